"""``speechexp-infer``: a checkpoint over a user's files through ``trainer.predict``.

The files are read by a dataset (:class:`~speechexp.inference.files.InferenceFiles`) in
length-bucketed batches (:class:`~speechexp.data.samplers.BucketBatchSampler`, which
shards them across processes under DDP), the task's ``predict_step`` runs the model (the
same code as the Python API), and :class:`PredictionWriter` writes each batch's outputs
as it comes (separated WAVs at the input's rate and length; transcripts, emotions and
word timings) and each process's rows. The launching process then merges the rows into
``predictions.csv`` (and ``words.jsonl``) in input order, one row per file.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from speechexp.data.progress import progress
from speechexp.data.samplers import BucketBatchSampler
from speechexp.errors import SpeechexpError
from speechexp.inference.files import (
    FeatureLoader, InferenceFiles, SeparationLoader, assign_speakers, collate_items, collect_inputs, durations,
    output_names,
)
from speechexp.inference.model import AsrEmotionModel, SeparationModel, load_model, restore_sources
from speechexp.io import write_csv_atomic, write_json_atomic, write_text_atomic, write_wav_atomic

log = logging.getLogger("speechexp.infer")
PARTS_DIR = ".predict_parts"  # each process's rows, merged and removed at the end
BASE_COLUMNS = ["input", "status", "error", "duration_s", "sample_rate"]


class InferenceData(pl.LightningDataModule):
    """The files as one predict loader of length-bucketed batches. Built inside Lightning's
    ``predict_dataloader`` hook, so that under DDP Lightning can hand the batch sampler its
    distributed sampler (the sampler then takes every ``world_size``-th file)."""

    def __init__(self, dataset: InferenceFiles, lengths: list[float], batch_size: int, num_workers: int,
                 kind: str) -> None:
        super().__init__()
        self.dataset, self.lengths, self.kind = dataset, lengths, kind
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)

    def predict_dataloader(self) -> DataLoader:
        sampler = BucketBatchSampler(range(len(self.dataset)), self.batch_size, lengths=self.lengths, shuffle=False)
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.num_workers,
                          collate_fn=functools.partial(collate_items, kind=self.kind),
                          persistent_workers=False)


class PredictionWriter(pl.Callback):
    """Writes each prediction batch's outputs and keeps one row per file; at the end of
    prediction, this process's rows go to ``<run dir>/.predict_parts/rank<r>.json``."""

    def __init__(self, run_dir: Path, names: list[str], inputs: list[str], model: SeparationModel | AsrEmotionModel,
                 figures: bool = False) -> None:
        self.run_dir, self.names, self.inputs = Path(run_dir), names, inputs
        self.kind, self.model_rate = model.kind, model.sample_rate
        self.figures = bool(figures)
        self.rows: dict[int, dict] = {}
        self.words: dict[int, list] = {}
        self._ticks: Iterator[int] | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows, self.words = {}, {}
        if trainer.global_rank == 0:  # a bar over this process's share of the files
            share = math.ceil(len(self.names) / max(1, trainer.world_size))
            self._ticks = progress(iter(range(share)), share, "Files")
            next(self._ticks, None)  # start its clock; it counts an item when asked for the next
    def _tick(self, count: int) -> None:
        for _ in range(count if self._ticks is not None else 0):
            next(self._ticks, None)

    def on_predict_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        for failure in outputs["failed"]:
            self.rows[failure["index"]] = self.row(failure["index"], "failed", error=failure["error"])
        for position, index in enumerate(outputs["index"]):
            rate, samples = int(batch["sample_rate"][position]), int(batch["samples"][position])
            row = self.row(index, "ok", duration_s=round(samples / rate, 4), sample_rate=rate)
            if self.kind == "separation":
                row.update(self.write_sources(index, outputs["sources"][position], rate, samples))
            else:
                result = outputs["transcriptions"][position]
                row.update(result.as_row())
                self.words[index] = [vars(word) for word in result.words]
            self.rows[index] = row
        self._tick(len(outputs["failed"]) + len(outputs["index"]))

    def row(self, index: int, status: str, error: str = "", duration_s: Any = "", sample_rate: Any = "") -> dict:
        return {"input": self.inputs[index], "status": status, "error": error, "duration_s": duration_s,
                "sample_rate": sample_rate}

    def write_sources(self, index: int, sources: Any, rate: int, samples: int) -> dict:
        """Each separated source as ``separated/<input's relative name>_source_<k>.wav`` at the
        input's rate and length; the row's ``source_<k>`` columns (paths relative to the run dir)."""
        audio = restore_sources(sources, self.model_rate, rate, samples)
        columns = {}
        for k, source in enumerate(audio, start=1):
            relative = f"separated/{self.names[index]}_source_{k}.wav"
            write_wav_atomic(self.run_dir / relative, source, rate)
            columns[f"source_{k}"] = relative
            if self.figures:
                from speechexp.viz.spectrogram import plot_spectrogram_and_mel  # noqa: PLC0415

                plot_spectrogram_and_mel(source, rate, self.run_dir / "figures" / f"{self.names[index]}_source_{k}.png",
                                         title=f"{self.names[index]}: source {k}")
        return columns

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._tick(len(self.names))  # finish the bar (its last line in a log)
        part = {"rows": {str(k): v for k, v in self.rows.items()}, "words": {str(k): v for k, v in self.words.items()}}
        write_json_atomic(self.run_dir / PARTS_DIR / f"rank{trainer.global_rank}.json", part)
        trainer.strategy.barrier("predictions written")


def merge_parts(run_dir: Path, count: int) -> tuple[list[dict], dict[int, list], list[int]]:
    """Every process's rows (each file once: distributed samplers may repeat a file) in input
    order, their word timings, and how many files each process predicted."""
    rows: dict[int, dict] = {}
    words: dict[int, list] = {}
    per_process = []
    parts = run_dir / PARTS_DIR
    for path in sorted(parts.glob("rank*.json"), key=lambda p: int(p.stem[4:])):
        part = json.loads(path.read_text())
        rows.update({int(k): v for k, v in part["rows"].items()})
        words.update({int(k): v for k, v in part["words"].items()})
        per_process.append(len(part["rows"]))
    shutil.rmtree(parts, ignore_errors=True)
    missing = [i for i in range(count) if i not in rows]
    if missing:
        raise SpeechexpError(f"Prediction returned no result for {len(missing)} of {count} files; "
                             "run again with trainer=cpu.")
    return [rows[i] for i in range(count)], words, per_process


def build_dataset(model: SeparationModel | AsrEmotionModel, files: list[Path], speakers: str | None
                  ) -> InferenceFiles:
    if isinstance(model, SeparationModel):
        return InferenceFiles(files, SeparationLoader(model.sample_rate))
    labels = assign_speakers(files, speakers)
    if not model.speaker_norm and labels is not None:
        log.info("This model uses no speaker statistics (speaker_norm=false): speakers=%s changes nothing.", speakers)
    loader = FeatureLoader(model.logmel, model.speaker_norm, labels if model.speaker_norm else None,
                           lone_mean=getattr(model.task, "lone_mean", None),
                           prosody=getattr(model.task, "reads_prosody", False), pitch=model.pitch_tracker)
    if model.speaker_norm and labels is not None:
        loader.speaker_means(files)
    return InferenceFiles(files, loader)


def predict_files(cfg: DictConfig, run_dir: Path) -> tuple[list[dict], list[int]]:
    """Run ``cfg.ckpt_path`` over ``cfg.input``; write ``predictions.csv`` (and ``words.jsonl``)
    into ``run_dir``; return the rows and how many files each process predicted. Only the
    launching process (rank 0) returns rows; other DDP processes return ``([], [])``."""
    from speechexp.runs.build import build_trainer  # noqa: PLC0415

    files, root = collect_inputs(str(cfg.input))
    model = load_model(cfg.ckpt_path, device="cpu", decoder=cfg.get("decoder"))  # the trainer moves it to its devices
    task = model.task
    if isinstance(model, SeparationModel):
        task.chunk_seconds, task.overlap_seconds = float(cfg.chunk_seconds), float(cfg.overlap_seconds)
        task.predict_batch_size = int(cfg.batch_size)
    else:
        task.predict_words = bool(cfg.words)
    names = output_names(files, root)
    dataset = build_dataset(model, files, cfg.get("speakers"))
    data = InferenceData(dataset, durations(files), int(cfg.batch_size), int(cfg.num_workers), model.kind)
    writer = PredictionWriter(run_dir, names, [str(f) for f in files], model, figures=cfg.get("figures", False))
    trainer = build_trainer(cfg.trainer, False, [writer], enable_progress_bar=False, enable_model_summary=False)
    trainer.predict(task, datamodule=data, return_predictions=False)
    if trainer.global_rank != 0:
        return [], []
    rows, words, per_process = merge_parts(run_dir, len(files))
    columns = list(BASE_COLUMNS)
    if isinstance(model, SeparationModel):
        columns += [f"source_{k}" for k in range(1, model.n_sources + 1)]
    else:
        columns += ["transcript", "emotion"] + [f"p_{name}" for name in model.emotion_names]
        if cfg.words:
            write_text_atomic(run_dir / "words.jsonl", "".join(
                json.dumps({"input": row["input"], "words": words.get(i, [])}) + "\n"
                for i, row in enumerate(rows) if row["status"] == "ok"))
    write_csv_atomic(run_dir / "predictions.csv", [{c: row.get(c, "") for c in columns} for row in rows], columns)
    return rows, per_process
