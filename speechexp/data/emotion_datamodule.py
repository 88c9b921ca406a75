"""Emotional speech batches for multitask ASR + emotion: dataset, collate and datamodule.

The datamodule reads only ``metadata.csv`` (columns ``path, speaker, emotion, text,
duration, split`` and optionally ``sample_rate`` and ``source``) and the audio it names; relative paths
are relative to the dataset folder. Batches are dicts::

    features        [batch, frames, n_mels] float32, zero-padded
    pitch           [batch, frames, 2] float32 (log F0, voicing), zero-padded; only with ``pitch=True``
    feature_lengths [batch] long
    tokens          [batch, tokens] long, padded with 0 (the CTC blank)
    token_lengths   [batch] long
    phonemes        [batch, phonemes] long, padded with 0; phoneme_lengths [batch]; only with ``phonemes=True``
    emotion         [batch] long, index into ``emotion_names`` (-1: no label, evaluation sets)
    labelled        int, how many rows have an emotion label (counted on the CPU, so a
                    task needs no device sync to tell a fully labelled batch)
    text            list[str] (normalised transcripts)
    path            list[str]
    source          list[str] (where each recording comes from, for per-source metrics; "" if unknown)
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from speechexp.data import metadata
from speechexp.data.features import FeatureCache, LogMel, feature_params, load_audio
from speechexp.data.preparer import METADATA_FILE
from speechexp.data.samplers import BucketBatchSampler, EpochSampler
from speechexp.data.phonemes import PhonemeTokenizer
from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError
from speechexp.models.pitch import PitchTracker

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "speaker", "emotion", "text", "duration", "split")
# Canonical label order; emotions not listed here follow alphabetically.
UNLABELLED = -1  # the emotion target of a recording without an emotion label
EMOTION_ORDER = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised", "calm")


def read_metadata_frame(dataset_dir: str | os.PathLike) -> pd.DataFrame:
    """``metadata.csv`` of ``dataset_dir`` as strings, with absolute paths; checks the columns."""
    rows = metadata.read_metadata(dataset_dir, required=REQUIRED_COLUMNS)
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else list(REQUIRED_COLUMNS), dtype=str)
    frame["path"] = [str(metadata.resolve_audio_path(dataset_dir, p)) for p in frame["path"]]
    return frame


class EmotionSpeechDataset(Dataset):
    """Utterances of one split; item ``i`` is a dict of ``features [frames, n_mels]``, ``tokens [tokens]``,
    ``emotion`` (int; -1 for a recording without an emotion label), ``text``, ``path`` and
    ``source`` (the metadata's ``source`` column, else ""), and, given a ``pitch`` tracker
    and its cache, the frames' ``pitch [frames, 2]``; given a ``phonemes`` tokenizer, the
    transcript's ``phonemes [phonemes]``."""

    def __init__(self, rows: pd.DataFrame, logmel: LogMel, tokenizer: CharTokenizer,
                 emotion_index: dict[str, int], cache: FeatureCache,
                 pitch: tuple[PitchTracker, FeatureCache] | None = None,
                 phonemes: PhonemeTokenizer | None = None) -> None:
        self.rows = rows.reset_index(drop=True)
        self.logmel, self.tokenizer, self.cache, self.pitch = logmel, tokenizer, cache, pitch
        self.phonemes = phonemes
        self.emotion_index = emotion_index
        self.sources = list(self.rows["source"]) if "source" in self.rows.columns else [""] * len(self.rows)
        has_rate = "sample_rate" in self.rows.columns
        self.file_rates = [int(r) for r in self.rows["sample_rate"]] if has_rate else [logmel.sample_rate] * len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> list[float]:
        """Durations in seconds ``[items]`` (from metadata, no audio read) for bucketing."""
        return [float(d) for d in self.rows["duration"]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows.iloc[index]
        path, rate = row["path"], self.file_rates[index]

        @functools.cache
        def load() -> np.ndarray:  # read once for both front ends
            return load_audio(path, rate, self.logmel.sample_rate)

        features = self.cache.get(path, lambda: self.logmel(load()))
        text = self.tokenizer.normalize(row["text"])
        item = {
            "features": torch.from_numpy(np.asarray(features, dtype=np.float32)),
            "tokens": torch.tensor(self.tokenizer.encode(text), dtype=torch.long),
            "emotion": self.emotion_index.get(row["emotion"], UNLABELLED),
            "text": text,
            "path": path,
            "source": self.sources[index],
        }
        if self.pitch is not None:
            tracker, cache = self.pitch
            pitch = cache.get(path, lambda: tracker.track(load()))
            item["pitch"] = torch.from_numpy(np.asarray(pitch, dtype=np.float32))
        if self.phonemes is not None:
            item["phonemes"] = torch.tensor(self.phonemes.encode(text), dtype=torch.long)
        return item


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of dataset items into the batch dict described in the module docstring."""
    feats = [it["features"] for it in items]
    toks = [it["tokens"] for it in items]
    feature_lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    token_lengths = torch.tensor([t.shape[0] for t in toks], dtype=torch.long)
    features = pad_frames(feats)
    tokens = pad_targets(toks)
    return {
        "features": features, "feature_lengths": feature_lengths,
        "tokens": tokens, "token_lengths": token_lengths,
        "emotion": torch.tensor([it["emotion"] for it in items], dtype=torch.long),
        "labelled": sum(it["emotion"] != UNLABELLED for it in items),
        "text": [it["text"] for it in items], "path": [it["path"] for it in items],
        "source": [it["source"] for it in items],
        **({"pitch": pad_frames([it["pitch"] for it in items])} if "pitch" in items[0] else {}),
        **({"phonemes": pad_targets([it["phonemes"] for it in items]),
            "phoneme_lengths": torch.tensor([len(it["phonemes"]) for it in items], dtype=torch.long)}
           if "phonemes" in items[0] else {}),
    }


def pad_targets(targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-utterance CTC targets ``[S_i]`` → ``[batch, max(1, max S_i)]``, padded with 0 (the blank)."""
    out = torch.zeros(len(targets), max([1] + [t.shape[0] for t in targets]), dtype=torch.long)
    for i, t in enumerate(targets):
        out[i, : t.shape[0]] = t
    return out


def pad_frames(frames: Sequence[torch.Tensor], length: int | None = None) -> torch.Tensor:
    """Per-utterance ``[frames_i, dim]`` → ``[batch, length, dim]`` (default: the most frames),
    zero-padded."""
    length = max(f.shape[0] for f in frames) if length is None else int(length)
    out = torch.zeros(len(frames), length, frames[0].shape[1], dtype=torch.float32)
    for i, f in enumerate(frames):
        out[i, : f.shape[0]] = torch.as_tensor(f)
    return out


class EmotionSpeechDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a prepared emotional speech folder.

    Args:
        dataset_dir: folder holding ``metadata.csv`` (from a preparer).
        batch_size, num_workers: DataLoader settings.
        sample_rate: feature sample rate; audio at another rate (``sample_rate`` column)
            is resampled.
        n_mels, n_fft, hop_length, win_length, feature_backend ('librosa'|'torch'): log-mel settings.
        feature_cache: 'memory', 'disk' (under ``cache_dir``, default
            ``dataset_dir/feature_cache``) or 'none'.
        emotions: label set and order. Default: every emotion in metadata, canonical
            order (:data:`EMOTION_ORDER`).
        other_emotions: what becomes of rows whose emotion is not in ``emotions``: 'drop'
            (the default, for training) or 'unlabelled' (kept with emotion -1, as rows with
            an empty emotion always are: scored for CER/WER, not for emotion; evaluation sets).
        vocabulary, umlauts: tokenizer settings (see :class:`CharTokenizer`).
        bucket: length-bucketed batches (else plain shuffled batches); ``bucket_pool``
            is the pool size in batches.
        max_duration: drop utterances longer than this many seconds (None keeps all).
        seed: seed of batch order.
        clean_epochs: a clean-first curriculum for a corpus with degraded recordings (its
            ``channel`` column, ``dataset.preparer.degrade``): the first ``clean_epochs``
            training epochs draw only clean utterances (as many as the split holds, so epochs
            keep their length), then every utterance. Needs ``bucket``.
        pitch: also track each frame's F0 and voicing from the waveform (batches carry
            ``pitch``), for a model whose prosody includes pitch (the model is told so).
        phonemes: batches also carry each transcript's espeak phonemes (``phonemes``,
            ``phoneme_lengths``; :mod:`speechexp.data.phonemes`), and the model gets a phoneme
            CTC head (``phoneme_classes``).
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        batch_size: int = 16,
        num_workers: int = 0,
        sample_rate: int = 16000,
        n_mels: int = 80,
        n_fft: int = 400,
        hop_length: int = 160,
        win_length: int | None = None,
        feature_backend: str = "librosa",
        feature_cache: str = "memory",
        cache_dir: str | os.PathLike | None = None,
        emotions: Sequence[str] | None = None,
        vocabulary: str | None = None,
        umlauts: str = "transliterate",
        bucket: bool = True,
        bucket_pool: int = 50,
        max_duration: float | None = None,
        seed: int = 0,
        other_emotions: str = "drop",
        clean_epochs: int = 0,
        pitch: bool = False,
        phonemes: bool = False,
    ) -> None:
        super().__init__()
        self.dataset_dir = Path(dataset_dir)
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.bucket, self.bucket_pool = bool(bucket), int(bucket_pool)
        self.clean_epochs = int(clean_epochs)
        if self.clean_epochs < 0:
            raise SpeechexpError(f"dataset.datamodule.clean_epochs={clean_epochs} must be 0 or more.")
        if self.clean_epochs and not self.bucket:
            raise SpeechexpError("dataset.datamodule.clean_epochs needs bucket=true (the bucketing sampler runs "
                                 "the curriculum); set bucket=true or clean_epochs=0.")
        self.logmel = LogMel(sample_rate=int(sample_rate), n_mels=int(n_mels), n_fft=int(n_fft),
                             hop_length=int(hop_length), win_length=win_length, backend=str(feature_backend))
        self.tokenizer = CharTokenizer(vocabulary=vocabulary, umlauts=str(umlauts))
        self.phoneme_tokenizer = PhonemeTokenizer() if phonemes else None
        self.cache = FeatureCache(
            str(feature_cache), directory=cache_dir or self.dataset_dir / "feature_cache",
            params=feature_params(self.logmel),
        )
        self.pitch_tracker = PitchTracker(self.logmel.sample_rate, self.logmel.hop_length) if pitch else None
        self.pitch_cache = None if self.pitch_tracker is None else FeatureCache(
            str(feature_cache), directory=cache_dir or self.dataset_dir / "feature_cache",
            params={"pitch": self.pitch_tracker.settings},
        )
        frame = read_metadata_frame(self.dataset_dir)
        present = sorted(set(frame["emotion"]) - {""})
        if emotions is None:
            emotions = [e for e in EMOTION_ORDER if e in present] + [e for e in present if e not in EMOTION_ORDER]
        self.emotion_names: list[str] = [str(e) for e in emotions]
        if not self.emotion_names:
            raise SpeechexpError(f"{self.dataset_dir / METADATA_FILE} has no rows; re-run speechexp-prepare.")
        if other_emotions not in ("drop", "unlabelled"):
            raise SpeechexpError(f"dataset.datamodule.other_emotions={other_emotions!r} is not supported; use "
                                 "'drop' or 'unlabelled'.")
        known = frame["emotion"].isin(self.emotion_names)
        if other_emotions == "unlabelled":
            frame.loc[~known, "emotion"] = ""
        keep = known | (frame["emotion"] == "")  # "": no label (evaluation sets)
        if max_duration is not None:
            keep &= frame["duration"].astype(float) <= float(max_duration)
        if (~keep).any():
            log.info("Dropping %d of %d utterances (emotion not in %s or too long)",
                     int((~keep).sum()), len(frame), self.emotion_names)
        self.metadata = frame[keep].reset_index(drop=True)
        self._datasets: dict[str, EmotionSpeechDataset] = {}

    # -- what a model needs to know
    @property
    def num_emotions(self) -> int:
        return len(self.emotion_names)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def n_mels(self) -> int:
        return self.logmel.n_mels

    def model_kwargs(self) -> dict[str, Any]:
        """Sizes a model takes from the data: ``n_mels``, ``vocab_size``, ``num_emotions``, and
        ``pitch=True`` when batches carry pitch tracks."""
        kwargs: dict[str, Any] = {"n_mels": self.n_mels, "vocab_size": self.vocab_size,
                                  "num_emotions": self.num_emotions}
        if self.pitch_tracker is not None:
            kwargs["pitch"] = True
        if self.phoneme_tokenizer is not None:
            kwargs["phoneme_classes"] = self.phoneme_tokenizer.vocab_size
        return kwargs

    def task_kwargs(self) -> dict[str, Any]:
        """What a task needs to decode and report: the tokenizer and the emotion names."""
        return {"tokenizer": self.tokenizer, "emotion_names": list(self.emotion_names)}

    def dataset(self, split: str) -> EmotionSpeechDataset:
        """The dataset of ``split`` ('train', 'val' or 'test'), built once."""
        if split not in self._datasets:
            index = {e: i for i, e in enumerate(self.emotion_names)}
            rows = self.metadata[self.metadata["split"] == split]
            pitch = None if self.pitch_tracker is None else (self.pitch_tracker, self.pitch_cache)
            self._datasets[split] = EmotionSpeechDataset(rows, self.logmel, self.tokenizer, index, self.cache, pitch,
                                                         self.phoneme_tokenizer)
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            self.dataset(split)

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        """The DataLoader of ``split`` as training (``shuffle``) or evaluation reads it."""
        data = self.dataset(split)
        common = {"num_workers": self.num_workers, "collate_fn": collate,
                  "persistent_workers": self.num_workers > 0}
        if self.bucket:  # under DDP, Lightning hands the sampler its DistributedSampler (rank, replicas)
            warmup = self.clean_indices(data) if shuffle and self.clean_epochs else None
            sampler = BucketBatchSampler(EpochSampler(len(data)), self.batch_size, lengths=data.lengths(), shuffle=shuffle,
                                         seed=self.seed, pool_batches=self.bucket_pool,
                                         warmup_indices=warmup, warmup_epochs=self.clean_epochs)
            return DataLoader(data, batch_sampler=sampler, **common)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=generator, **common)

    def clean_indices(self, data: EmotionSpeechDataset) -> list[int]:
        """Positions of ``data``'s clean recordings (``channel`` column ``clean``)."""
        if "channel" not in data.rows.columns:
            raise SpeechexpError(f"dataset.datamodule.clean_epochs needs a 'channel' column in "
                                 f"{self.dataset_dir / METADATA_FILE} (a corpus prepared with dataset.preparer.degrade); "
                                 "set clean_epochs=0 for this dataset.")
        clean = [i for i, channel in enumerate(data.rows["channel"].fillna("clean")) if channel == "clean"]
        if not clean:
            raise SpeechexpError(f"dataset.datamodule.clean_epochs: no clean training utterance in {self.dataset_dir}; "
                                 "lower dataset.preparer.degrade below 1 or set clean_epochs=0.")
        return clean

    def train_dataloader(self) -> DataLoader:
        if len(self.dataset("train")) == 0:
            raise SpeechexpError(
                f"{self.dataset_dir / METADATA_FILE} has no train rows for emotions {self.emotion_names}; "
                "re-run speechexp-prepare or change dataset.datamodule.emotions."
            )
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
