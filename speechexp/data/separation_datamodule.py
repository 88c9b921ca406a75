"""DataModule for separation datasets: mixtures and their reference sources.

Reads only ``metadata.csv`` and the WAVs it names (columns ``mixture``, ``source1``,
``source2``, ..., ``split``). The whole dataset is small, so audio is loaded once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from speechexp.data.metadata import check_files_exist, read_metadata, resolve_audio_path
from speechexp.errors import SpeechexpError
from speechexp.io import read_wav


class SeparationDataset(Dataset):
    """In-memory mixtures ``[time]`` and sources ``[n_src, time]`` of one split."""

    def __init__(self, ids: list[str], mixtures: np.ndarray, sources: np.ndarray):
        self.ids, self.mixtures, self.sources = ids, mixtures, sources

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {
            "id": self.ids[index],
            "mixture": torch.from_numpy(self.mixtures[index]),
            "sources": torch.from_numpy(self.sources[index]),
        }


class SeparationDataModule(pl.LightningDataModule):
    """Batches of ``mixture [batch, time]`` and ``sources [batch, n_src, time]``.

    Args:
        dataset_dir: a prepared folder with ``metadata.csv``.
        sample_rate: the rate every WAV must have (a mismatch is an error naming the file).
        n_src: number of ``source{k}`` columns to read.
    """


    def __init__(self, dataset_dir: str | os.PathLike, sample_rate: int = 8000, n_src: int = 2,
                 batch_size: int = 16, num_workers: int = 0):
        super().__init__()
        self.dataset_dir = Path(dataset_dir)
        self.sample_rate = int(sample_rate)
        self.n_src = int(n_src)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.splits: dict[str, SeparationDataset] = {}

    @property
    def source_columns(self) -> list[str]:
        return [f"source{k + 1}" for k in range(self.n_src)]

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        columns = ["mixture", *self.source_columns]
        rows = read_metadata(self.dataset_dir, required=["id", "split", *columns])
        check_files_exist(self.dataset_dir, rows, columns)
        for split in ("train", "val", "test"):
            chosen = [r for r in rows if r["split"] == split]
            if not chosen:
                raise SpeechexpError(
                    f"{self.dataset_dir / 'metadata.csv'} has no rows with split={split}; "
                    "re-prepare with a split fraction for it."
                )
            self.splits[split] = self._load(chosen)

    def _load(self, rows: list[dict[str, str]]) -> SeparationDataset:
        mixtures, sources = [], []
        for row in rows:
            mixture = self._read(row["mixture"])
            refs = [self._read(row[c]) for c in self.source_columns]
            lengths = {len(mixture), *(len(r) for r in refs)}
            if len(lengths) != 1:
                raise SpeechexpError(
                    f"Example {row['id']} in {self.dataset_dir} has mixture and sources of "
                    f"different lengths {sorted(lengths)}; re-prepare the dataset."
                )
            mixtures.append(mixture)
            sources.append(np.stack(refs))
        if len({len(m) for m in mixtures}) != 1:
            raise SpeechexpError(f"Examples in {self.dataset_dir} differ in length; re-prepare the dataset.")
        return SeparationDataset([r["id"] for r in rows], np.stack(mixtures), np.stack(sources))

    def _read(self, value: str) -> np.ndarray:
        return read_wav(resolve_audio_path(self.dataset_dir, value), self.sample_rate)

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        """The DataLoader of ``split`` as training (``shuffle``) or evaluation reads it."""
        return DataLoader(self.splits[split], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
