"""Lightning callbacks every run uses: the resume checkpoint saved after each epoch's logs,
graceful interruption, a guard on non-finite losses, one summary line (with throughput) per
epoch, and a distributed process's clean exit; and the optional average of the weights
(``callbacks=weight_average``)."""

from __future__ import annotations

import atexit
import logging
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from speechexp.errors import SpeechexpError
from speechexp.runs.loggers import ResumableCSVLogger, hide_tensorboard_events_from_step

log = logging.getLogger("speechexp")


def batch_size_of(batch: Any) -> int:
    """Items in a batch: the first dimension of its first tensor (dicts, lists or a tensor)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for value in values:
        size = batch_size_of(value)
        if size:
            return size
    return 0


class GracefulInterrupt(pl.Callback):
    """SIGTERM (SLURM pre-emption, ``kill``) and a first Ctrl+C stop training after the
    current batch and save ``dirpath/last.ckpt``, so re-running the command resumes; a
    second Ctrl+C aborts at once.

    Lightning already turns SIGTERM into a stop after the current batch; Ctrl+C is routed
    through the same path (a mid-step ``KeyboardInterrupt`` could save half-updated weights).
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self._previous_handler: Any = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        log.warning("Ctrl+C: stopping after this batch and saving last.ckpt (press Ctrl+C again to abort now).")
        self._restore()
        signal.raise_signal(signal.SIGTERM)

    def _restore(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            path = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(path, weights_only=False)
            log.warning("Interrupted at epoch %d, step %d: saved %s.", trainer.current_epoch, trainer.global_step, path)


class LastCheckpoint(pl.Callback):
    """Save ``dirpath/last.ckpt``, the point a re-run resumes from, after every epoch once
    the epoch's metrics are in the logs: as the next epoch starts and when training ends.
    A resumed run first drops what the CSV log holds past the checkpoint and hides what
    TensorBoard's does.

    Lightning logs an epoch's training metrics after every ``on_train_epoch_end`` hook, so
    a checkpoint saved there (ModelCheckpoint's ``save_on_train_epoch_end``) and a SIGKILL
    before the log was written resume past an epoch the log never got. Saved later, a kill
    can only leave rows *after* the checkpoint, which the resumed run drops and redoes:
    every epoch is logged once.
    """

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self._first_epoch = 0
        self._saving_between_epochs = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_epoch = trainer.current_epoch
        if trainer.ckpt_path and trainer.is_global_zero:  # resumed: the checkpoint's step is redone from here
            for logger in trainer.loggers:
                if isinstance(logger, ResumableCSVLogger) and (dropped := logger.forget_from_step(trainer.global_step)):
                    log.info("Dropped %d CSV log rows from step %d on: this run logs them again.",
                             dropped, trainer.global_step)
                elif isinstance(logger, TensorBoardLogger):
                    hide_tensorboard_events_from_step(logger, trainer.global_step)
                # (W&B keeps the history it received: the redone steps reach it twice)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch > self._first_epoch:  # an epoch finished and was logged
            self._saving_between_epochs = True
            try:
                self._save(trainer)
            finally:
                self._saving_between_epochs = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self._saving_between_epochs:
            # Lightning counts the new epoch "ready" just before this hook; nothing of it has
            # run, so the checkpoint records the state training ended the last epoch in (a
            # "ready" epoch would resume as one whose batches are all done, and be skipped)
            for counts in checkpoint["loops"]["fit_loop"]["epoch_progress"].values():
                counts["ready"] = counts["started"]

    def _save(self, trainer: pl.Trainer) -> None:
        if not trainer.fast_dev_run:  # like ModelCheckpoint: a smoke run keeps no checkpoints
            trainer.save_checkpoint(self.path, weights_only=False)


class WeightAverage(EMAWeightAveraging):
    """Lightning's exponential moving average of the weights (``decay`` per optimizer step):
    validation, checkpoints (``state_dict``; the raw weights ride along to resume from) and
    the test read the average.

    Lightning's callback also runs when a checkpoint is loaded to *test* after fitting, and
    there puts the raw weights back, so the run's test would read other weights than its
    checkpoint (and ``speechexp-eval``) holds; outside fitting the average is kept.
    """

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class NonFiniteLossGuard(pl.Callback):
    """Stop training at the first non-finite training loss with one sentence naming the
    step and the likely cause (the task's ``nonfinite_loss_hint``, if it has one)."""

    default_hint = "lower optimizer.lr or set trainer.gradient_clip_val"

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        # before backward: the optimizer never steps on it, so the weights stay finite
        if not bool(torch.isfinite(loss.detach()).all()):
            hint = getattr(pl_module, "nonfinite_loss_hint", None) or self.default_hint
            raise SpeechexpError(
                f"The training loss became {float(loss.detach()):g} at epoch {trainer.current_epoch}, "
                f"step {trainer.global_step}; {hint}."
            )


class EpochSummary(pl.Callback):
    """Per epoch: log ``train/epoch_s`` (the whole epoch), ``train/seconds`` and
    ``val/seconds`` (its training batches and its validation pass), ``train/items_per_s``
    and ``val/items_per_s`` (throughput, for comparing machines) and the monitored
    metric's best so far (``<monitor>_best``); with the progress bar off, also print one
    line: epoch, step, train loss, the monitored metric and its best, seconds per epoch
    and throughput."""

    def __init__(self, monitor: str, mode: str = "min", loss_key: str = "train/loss") -> None:
        self.monitor, self.mode, self.loss_key = monitor, str(getattr(mode, "value", mode)), loss_key
        self.best: float | None = None
        self._items = {"train": 0, "val": 0}
        self._seconds = {"train": 0.0, "val": 0.0}
        self._started = {"train": 0.0, "val": 0.0}

    def state_dict(self) -> dict:
        return {"best": self.best}  # a resumed or continued run's line keeps the run's best

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict.get("best", self.best)

    def _start(self, stage: str) -> None:
        self._started[stage] = time.perf_counter()

    def _stop(self, stage: str) -> None:
        self._seconds[stage] += time.perf_counter() - self._started[stage]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a run resumed mid-epoch (from a checkpoint saved on SIGTERM) gets no
        # on_train_epoch_start for that epoch: its line counts from the resume
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._items, self._seconds = {"train": 0, "val": 0}, {"train": 0.0, "val": 0.0}
        self._epoch_started = time.perf_counter()
        self._start("train")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._items["train"] += batch_size_of(batch)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._stop("train")
            self._start("val")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._items["val"] += batch_size_of(batch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._stop("val")
            self._start("train")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop("train")
        epoch_seconds = time.perf_counter() - self._epoch_started
        current = trainer.callback_metrics.get(self.monitor)
        if current is not None and math.isfinite(float(current)):
            value = float(current)
            better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
            self.best = value if better else self.best
        logged = {"train/epoch_s": epoch_seconds}
        for stage in ("train", "val"):
            if self._items[stage] and self._seconds[stage] > 0:
                logged[f"{stage}/seconds"] = self._seconds[stage]
                logged[f"{stage}/items_per_s"] = self._items[stage] / self._seconds[stage]
        if self.best is not None:
            logged[f"{self.monitor}_best"] = self.best
        pl_module.log_dict(logged, on_step=False, on_epoch=True, prog_bar=True, sync_dist=False, rank_zero_only=True)
        if trainer.progress_bar_callback is None and trainer.is_global_zero:
            if log.hasHandlers():
                log.info(self.line(trainer, epoch_seconds, logged))
            else:  # a process started by ddp_spawn has no logging set up: print it
                print(self.line(trainer, epoch_seconds, logged), flush=True)

    def line(self, trainer: pl.Trainer, epoch_seconds: float, logged: dict[str, float]) -> str:
        """``epoch 3/40 step 20 | train/loss 0.0123 | val/si_snr 25.3 (best 25.3) | 1.2 s, 480 items/s``."""
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {trainer.global_step}"]
        if self.loss_key in metrics:
            parts.append(f"{self.loss_key} {float(metrics[self.loss_key]):.4g}")
        if self.monitor in metrics:
            parts.append(f"{self.monitor} {float(metrics[self.monitor]):.4g} (best {self.best:.4g})")
        speed = f"{epoch_seconds:.1f} s"
        if "train/items_per_s" in logged:
            speed += f", {logged['train/items_per_s']:.0f} items/s"
        return " | ".join([*parts, speed])


def destroy_initialized_process_group() -> None:
    """Destroy this process's default process group, if it has one (an atexit handler)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DestroyProcessGroupAtExit(pl.Callback):
    """Each distributed process destroys its process group when it exits.

    Lightning does so for NCCL only; a gloo process (``trainer=ddp_sim``) left to the
    interpreter's shutdown aborts now and then ("terminate called without an active
    exception", SIGABRT, a failed run): of 40 pairs of spawned gloo processes that gather and
    exit, 3 aborted; none of 40 with the group destroyed at exit (``scripts/bench_gloo_exit.py
    --runs 40``). Every trainer the project builds carries this callback (``build_trainer``).
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # after Lightning has set up the group (in a ddp_spawn worker: in that process)
        if dist.is_available() and dist.is_initialized():
            atexit.unregister(destroy_initialized_process_group)  # once per process, however many trainers
            atexit.register(destroy_initialized_process_group)
