"""SeparationTask: trains a separator, logs loss / SI-SNR / SI-SNRi, exports test results.

One ``_shared_step`` serves train, val and test (Asteroid's ``common_step``). After
testing, the run directory holds each test example's separated sources as WAV
(``separated/``), per-example metrics (``test_metrics.csv``) and, for a few examples,
reconstructed-vs-ground-truth spectrogram figures (``figures/``).

Prediction (``trainer.predict``, ``speechexp-infer``, :mod:`speechexp.inference`): a batch
holds mixtures of any length at the model's rate; each is separated whole, or in
overlapping windows of ``chunk_seconds`` when longer (see :mod:`speechexp.inference.separation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

from speechexp.inference.separation import separate_batch
from speechexp.io import write_csv_atomic, write_wav_atomic
from speechexp.tasks.base import ConfiguredTask
from speechexp.viz.spectrogram import plot_estimates_vs_references, plot_spectrogram_and_mel

STAGES = ("train", "val", "test")


class SeparationTask(ConfiguredTask):
    """Wraps a separator ``[batch, time] → [batch, n_src, time]`` and a separation loss.

    Args:
        model: the separator (an ``nn.Module``).
        loss: a :class:`speechexp.losses.separation.SeparationLoss`.
        optimizer: a partial ``torch.optim`` constructor taking the parameters.
        scheduler: optional partial LR scheduler taking the optimizer.
        sample_rate: of the exported WAVs and figures.
        export_dir: where test exports go (the run directory); ``None`` disables exports.
        n_figures: test examples that get a spectrogram figure.
        n_media: test examples logged to the run's W&B / TensorBoard loggers (mixture,
            estimates and references as audio, their spectrogram comparison as an image).
        monitor: the metric a plateau scheduler follows.
    """

    # prediction: recordings longer than chunk_seconds are separated in windows that overlap
    # by overlap_seconds (speechexp-infer's chunk_seconds and overlap_seconds set them)
    chunk_seconds: float = 4.0
    overlap_seconds: float = 0.5
    predict_batch_size: int = 16

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, sample_rate: int = 8000,
                 export_dir: str | None = None, n_figures: int = 3, monitor: str = "val/si_snr",
                 run_config: dict | None = None, n_media: int = 3):
        super().__init__(optimizer, scheduler, monitor, run_config)
        self.model, self.loss = model, loss
        self.sample_rate, self.n_figures, self.n_media = int(sample_rate), int(n_figures), int(n_media)
        self.export_dir = Path(export_dir) if export_dir else None
        # keyed "<stage>_metrics": a bare "train" key would shadow nn.Module.train
        self.metrics = nn.ModuleDict({
            f"{stage}_metrics": MetricCollection({"si_snr": MeanMetric(), "si_snri": MeanMetric()})
            for stage in STAGES
        })
        self._test_rows: list[dict] = []
        self._figure_examples: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``mixture [batch, time]`` → ``estimates [batch, n_src, time]``."""
        return self.model(mixture)

    def _shared_step(self, batch: dict, stage: str) -> tuple[torch.Tensor, ...]:
        """Loss, aligned estimates ``[batch, n_src, time]``, their SI-SNR and SI-SNRi ``[batch, n_src]``."""
        mixture, sources = batch["mixture"], batch["sources"]
        loss, estimates = self.loss.aligned(self(mixture), sources)  # one permutation search (PIT)
        with torch.no_grad():
            est_snr = scale_invariant_signal_noise_ratio(estimates.detach().float(), sources)  # [batch, n_src]
            mix_snr = scale_invariant_signal_noise_ratio(mixture.unsqueeze(1).expand_as(sources), sources)
            metrics = self.metrics[f"{stage}_metrics"]
            metrics["si_snr"].update(est_snr)  # mean over examples and sources
            metrics["si_snri"].update((est_snr - mix_snr).mean(dim=1))
        batch_size = mixture.shape[0]
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size,
                 sync_dist=True)
        self.log(f"{stage}/loss_batch", loss, on_step=True, on_epoch=False, batch_size=batch_size)
        self.log(f"{stage}/si_snr_batch", est_snr.mean(), on_step=True, on_epoch=False, batch_size=batch_size)
        self.log_dict({f"{stage}/{name}": metric for name, metric in metrics.items()},
                      on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=batch_size)
        return loss, estimates, est_snr, est_snr - mix_snr

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        _, estimates, snr, improvement = self._shared_step(batch, "test")
        if self.export_dir is not None:
            self._export_batch(batch, estimates.detach().float().cpu(), snr.cpu(), improvement.cpu())

    def on_test_epoch_start(self) -> None:
        self._test_rows, self._figure_examples = [], []

    def separate(self, mixtures: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each mixture ``[time]`` at :attr:`sample_rate` → its sources ``[n_src, time]`` (CPU)."""
        chunk = max(1, int(round(self.chunk_seconds * self.sample_rate)))
        overlap = max(0, min(chunk - 1, int(round(self.overlap_seconds * self.sample_rate))))
        return separate_batch(self.model, list(mixtures), chunk, overlap, self.predict_batch_size)

    def predict_step(self, batch: dict, batch_idx: int = 0) -> dict:
        """``batch``: ``audio`` (list of ``[time]`` at :attr:`sample_rate`), ``index`` (list) and
        ``failed`` (files that could not be read, passed through) → the same with ``sources``
        (list of ``[n_src, time]``)."""
        sources = self.separate(batch["audio"]) if batch["audio"] else []
        return {"index": batch["index"], "sources": sources, "failed": batch.get("failed", [])}

    def _export_batch(self, batch: dict, estimates: torch.Tensor, snr: torch.Tensor, improvement: torch.Tensor) -> None:
        """Write each example's separated WAVs and keep its row (``snr``, ``improvement``: ``[batch, n_src]``)."""
        sources = batch["sources"].float().cpu()
        for i, example_id in enumerate(batch["id"]):
            row = {"id": example_id, "si_snr": snr[i].mean().item(), "si_snri": improvement[i].mean().item()}
            for k in range(estimates.shape[1]):
                write_wav_atomic(self.export_dir / "separated" / f"{example_id}_source{k + 1}.wav",
                                 estimates[i, k].numpy(), self.sample_rate)
                row[f"si_snr_source{k + 1}"] = snr[i, k].item()
            self._test_rows.append(row)
            if len(self._figure_examples) < max(self.n_figures, self.n_media):
                self._figure_examples.append((example_id, batch["mixture"][i].float().cpu(),
                                              estimates[i], sources[i]))

    def on_test_epoch_end(self) -> None:
        if self.export_dir is None:
            return
        rows, examples = self.gather_rows(self._test_rows), self.gather_rows(self._figure_examples)
        if not rows:  # not rank 0, or nothing tested
            return
        rows = sorted({row["id"]: row for row in rows}.values(), key=lambda row: row["id"])  # DDP padding repeats
        write_csv_atomic(self.export_dir / "test_metrics.csv", rows, list(rows[0].keys()))
        examples = sorted({e[0]: e for e in examples}.values(), key=lambda e: e[0])
        self._figure_examples = examples[: self.n_figures]
        figures = self.export_dir / "figures"
        if self._figure_examples:  # what the data looks like: mixture and sources of one example
            example_id, mixture, _, sources = self._figure_examples[0]
            for label, audio in (("mixture", mixture), *((f"source{k + 1}", s) for k, s in enumerate(sources))):
                plot_spectrogram_and_mel(audio.numpy(), self.sample_rate, figures / f"data_{example_id}_{label}.png",
                                         title=f"Test example {example_id}: {label}")
        for example_id, _, estimates, sources in self._figure_examples:
            plot_estimates_vs_references(
                [e.numpy() for e in estimates], [s.numpy() for s in sources], self.sample_rate,
                figures / f"test_{example_id}_separated_vs_truth.png",
                title=f"Test example {example_id}")
        self._log_media(examples[: self.n_media], figures, rows)

    MEDIA_TABLE_ROWS = 50  # test examples in the W&B / TensorBoard table of per-example SI-SNR

    def _log_media(self, examples: list, figures: Path, rows: list[dict]) -> None:
        """Log ``examples`` (id, mixture, estimates, references) as audio and their comparison
        figures as images to the W&B / TensorBoard loggers (bounded by ``n_media``), and a
        table of the test examples' SI-SNR (``rows``, the first :data:`MEDIA_TABLE_ROWS`)."""
        from speechexp.runs.media import log_audio, log_images, log_table, takes_media, timed  # noqa: PLC0415

        if not examples or not takes_media(self.trainer.loggers):  # a CSV log: no figures drawn for it
            return

        with timed(f"Test media of {len(examples)} example(s) logged"):
            step, clips, images, columns = self.trainer.global_step, {}, {}, list(rows[0].keys())
            log_table(self.trainer.loggers, "test/examples", columns,
                      [[row[c] for c in columns] for row in rows[: self.MEDIA_TABLE_ROWS]], step=step)
            for example_id, mixture, estimates, sources in examples:
                clips[f"test/audio/{example_id}/mixture"] = mixture.numpy()
                for k in range(estimates.shape[0]):
                    clips[f"test/audio/{example_id}/estimate{k + 1}"] = estimates[k].numpy()
                    clips[f"test/audio/{example_id}/reference{k + 1}"] = sources[k].numpy()
                path = figures / f"test_{example_id}_separated_vs_truth.png"
                if not path.is_file():
                    plot_estimates_vs_references([e.numpy() for e in estimates], [s.numpy() for s in sources],
                                                 self.sample_rate, path, title=f"Test example {example_id}")
                images[f"test/spectrograms/{example_id}"] = path
            log_audio(self.trainer.loggers, clips, self.sample_rate, step=step)
            log_images(self.trainer.loggers, images, step=step)
