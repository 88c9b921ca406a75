"""One run dir as a unit of work, from plan to finish.

A :class:`Run` owns the lifecycle that every entry point shares:

1. plan: skip, resume or start in its run dir (:mod:`speechexp.runs.plan`);
2. record: ``config.yaml`` (the resolved config) and ``run.json`` (run id, command line,
   package versions, git commit), then torch threads and the seed;
3. build: the dataset folder and datamodule, the W&B run's id/name/group, the loggers,
   callbacks and trainer (:mod:`speechexp.runs.build`);
4. fit and test, collecting the stage metrics;
5. finish: ``results.json`` with a status of ``completed``, ``failed`` (with the error)
   or ``interrupted``, ``figures/curves.png`` from the CSV log, ``report.html`` and
   ``report.md`` (unless ``report=false``), and the W&B run finished, also on failure.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from speechexp.errors import SpeechexpError
from speechexp.io import write_json_atomic, write_text_atomic
from speechexp.runs.build import (
    build_trainer, instantiate_checked, instantiate_each, prepare_dataset, resolved_container, stage_metrics,
)
from speechexp.runs.plan import CONFIG_FILE, RESULTS_FILE, RUN_FILE, RunPlan, new_run_id, plan_run
from speechexp.runs.provenance import describe_environment
from speechexp.runs.threads import set_threads
from speechexp.runs.tracking import configure_wandb, finish_wandb

log = logging.getLogger("speechexp")


def checkpoint_epochs(path: Path) -> int:
    """How many epochs the checkpoint at ``path`` completed."""
    import torch  # noqa: PLC0415 - loaded with Lightning anyway by now

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    # "processed": the epoch's training is done (a checkpoint saved in on_train_epoch_end, as
    # last.ckpt was before LastCheckpoint, has the epoch processed but not yet "completed")
    return int(progress.get("processed", checkpoint.get("epoch", 0)))


def json_number(value: float) -> float | str:
    """JSON has no inf/nan: write them as strings."""
    return value if math.isfinite(value) else str(value)


def write_results(run_dir: Path, metrics: dict[str, float], status: str, started: float, **extra: Any) -> Path:
    """Write ``run_dir/results.json``: metrics, status, wall_seconds, run_dir and extras."""
    results = {key: json_number(value) for key, value in sorted(metrics.items())}
    results.update(status=status, wall_seconds=round(time.time() - started, 3), run_dir=str(run_dir), **extra)
    return write_json_atomic(run_dir / RESULTS_FILE, results)


class Run:
    """A run in ``cfg.paths.output_dir``; use :meth:`for_training` or :meth:`for_evaluation`,
    then ``with run: ...``. ``metrics`` and ``extra`` end up in ``results.json``."""

    def __init__(self, cfg: DictConfig, plan: RunPlan, run_config: dict | None, start_from: str | None = None,
                 **extra: Any) -> None:
        self.cfg, self.plan, self.config = cfg, plan, run_config
        # the checkpoint training continues from: the run's own, else ckpt_path (fine-tuning)
        self.start_from = start_from
        self.dir = Path(cfg.paths.output_dir)
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
        self.best_checkpoint: str | None = None
        self.writes_results = True  # false in a DDP process other than rank 0 that has nothing to add
        self.curves_drawn = False

    @classmethod
    def for_training(cls, cfg: DictConfig) -> "Run":
        """Plan a training run: skip it, resume it from its newest checkpoint, or start it."""
        run_config = resolved_container(cfg)
        plan = plan_run(Path(cfg.paths.output_dir), run_config, resume=cfg.resume)
        own = str(plan.checkpoint) if plan.checkpoint else None
        fine_tune = str(plan.moved_ckpt_path) if plan.moved_ckpt_path else cfg.ckpt_path
        run = cls(cfg, plan, run_config, start_from=own or fine_tune, resumed_from=own)
        if plan.action == "continue":
            done, wanted = checkpoint_epochs(plan.checkpoint), cfg.trainer.get("max_epochs")
            if wanted is not None and 0 <= int(wanted) < done:  # Lightning would fail after the results were replaced
                raise SpeechexpError(f"{run.dir} already trained {done} epochs, more than trainer.max_epochs={wanted}; "
                                     f"pass trainer.max_epochs above {done} to train it longer, resume=false to start "
                                     "afresh (its files are kept aside), or another hydra.run.dir.")
            log.info("Continuing %s from epoch %d to %s.", run.dir, done, wanted)
            run.extra["continued_from_epoch"] = done
        run.extra["best_checkpoint"] = None  # results.json always says whether training kept a best
        if plan.action == "skip":
            run.metrics = {k: v for k, v in plan.previous_results.items() if "/" in k and isinstance(v, float)}
        return run

    @classmethod
    def for_evaluation(cls, cfg: DictConfig) -> "Run":
        """A new run that tests ``cfg.ckpt_path``'s weights (its config is in the checkpoint)."""
        return cls(cfg, RunPlan("start", new_run_id()), None, checkpoint=str(Path(cfg.ckpt_path).resolve()))

    @property
    def skipped(self) -> bool:
        """Whether the run dir already completed this configuration (``metrics`` are its results)."""
        return self.plan.action == "skip"

    @property
    def resuming(self) -> bool:
        return self.plan.checkpoint is not None

    def __enter__(self) -> "Run":
        self.started = time.time()
        if self.config is not None:
            write_text_atomic(self.dir / CONFIG_FILE, OmegaConf.to_yaml(self.config))
        write_json_atomic(self.dir / RUN_FILE, {"run_id": self.plan.run_id,
                                                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                **describe_environment()})
        set_threads(self.cfg)
        pl.seed_everything(self.cfg.seed, workers=True, verbose=False)
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            status, error = "completed", {}
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):  # Lightning's SIGTERM stop is a SystemExit
            status, error = "interrupted", {"error": "interrupted (SIGTERM or Ctrl+C); re-run to resume"}
        else:
            status, error = "failed", {"error": str(exc) or type(exc).__name__}
        if not (self.writes_results or exc is not None):
            finish_wandb(self.metrics, status)
            return
        write_results(self.dir, self.metrics, status, self.started, **self.extra, **error)
        try:
            started = time.perf_counter()
            if not self.curves_drawn:
                self.draw_curves()
            if self.cfg.get("report", True):
                from speechexp.reports import write_report  # noqa: PLC0415

                write_report(self.dir)
                log.info("Report: %s (curves and report in %.2f s)", self.dir / "report.html",
                         time.perf_counter() - started)
        except Exception as failure:  # the run's results are written; a figure or page must not fail it
            log.warning("No curves/report for %s: %s: %s", self.dir, type(failure).__name__, failure)
        finish_wandb(self.metrics, status)

    def draw_curves(self) -> Path | None:
        """``figures/curves.png`` from the run's ``csv/metrics.csv`` (when it has one and trained)."""
        from speechexp.viz.curves import CSV_LOG, CURVES_FILE, plot_curves  # noqa: PLC0415

        task = (self.config or {}).get("task") or {}
        if not (self.dir / CSV_LOG).is_file():
            return None
        self.curves_drawn = True
        return plot_curves(self.dir / CSV_LOG, self.dir / CURVES_FILE, monitor=task.get("monitor", "val/loss"),
                           mode=task.get("mode", "min"), metrics=list(task.get("curves") or []))

    def datamodule(self, dataset_cfg: DictConfig) -> pl.LightningDataModule:
        """Prepare (or reuse) the dataset folder and build its datamodule."""
        dataset_dir = prepare_dataset(dataset_cfg, self.cfg.paths.data_dir)
        self.extra["dataset_dir"] = str(dataset_dir)
        return instantiate_checked(dataset_cfg.datamodule, dataset_dir=str(dataset_dir))

    def trainer(self) -> pl.Trainer:
        """The trainer with this run's loggers (the W&B one tied to this run dir) and callbacks."""
        configure_wandb(self.cfg, self.plan.run_id)
        loggers, callbacks = instantiate_each(self.cfg.get("logger")), instantiate_each(self.cfg.get("callbacks"))
        if not loggers:  # LearningRateMonitor refuses a trainer without a logger
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        trainer = build_trainer(self.cfg.trainer, loggers, callbacks)
        if self.config is not None:
            for logger in trainer.loggers:  # wandb config / hparams.yaml: runs compare by their settings
                logger.log_hyperparams(self.config)
        return trainer

    def fit(self, trainer: pl.Trainer, task: pl.LightningModule, datamodule: pl.LightningDataModule) -> None:
        """Train from :attr:`start_from` (if any); record the metrics and the best checkpoint."""
        trainer.fit(task, datamodule=datamodule, ckpt_path=self.start_from, weights_only=True)
        self.metrics.update(stage_metrics(trainer, ("train", "val")))
        checkpoint = trainer.checkpoint_callback
        self.best_checkpoint = (checkpoint.best_model_path if checkpoint else "") or None
        if checkpoint is not None and checkpoint.best_model_score is not None:
            self.metrics[f"{self.cfg.task.monitor}_best"] = float(checkpoint.best_model_score)
        self.extra["best_checkpoint"] = self.best_checkpoint

    def test(self, trainer: pl.Trainer, task: pl.LightningModule, datamodule: pl.LightningDataModule) -> None:
        """Test the best weights of this run's training, else those of :attr:`start_from`,
        else the task's own; record the test metrics."""
        ckpt_path = self.best_checkpoint or self.start_from
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        self.metrics.update(stage_metrics(trainer, ("test",)))
        if getattr(task, "decoder", None) is not None:  # which CTC decoder the test/cer and test/wer are of
            self.extra["decoder"] = task.decoder.describe()
        if trainer.loggers and trainer.is_global_zero:  # the curves so far, as an image in W&B / TensorBoard
            from speechexp.runs.media import log_images  # noqa: PLC0415

            try:
                curves = self.draw_curves()
            except Exception as exc:  # noqa: BLE001  (a figure must not fail the run)
                log.warning("No curves for %s: %s", self.dir, exc)
                curves = None
            if curves is not None:
                log_images(trainer.loggers, {"test/curves": curves}, step=trainer.global_step)
