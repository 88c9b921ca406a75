"""What every entry point shares: compatibility checks, instantiation with clear errors,
trainer assembly, torch threads per job, the run record (config.yaml, run.json,
results.json), and turning errors into one-line messages (or failed sweep jobs)."""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from speechexp import compatibility
from speechexp.errors import SpeechexpError
from speechexp.io import write_json_atomic, write_text_atomic
from speechexp.provenance import describe_environment
from speechexp.rundir import CONFIG_FILE, RESULTS_FILE, RUN_FILE
from speechexp.tracking import finish_wandb

log = logging.getLogger("speechexp")

# Lightning 2.6 trips a torch 2.13 deprecation on every fit/test; it says nothing about the run
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def instantiate_checked(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that surfaces user errors as :class:`SpeechexpError`."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, SpeechexpError):
            raise cause from None
        first_line = str(exc).strip().splitlines()[0]
        raise SpeechexpError(f"{first_line} {cause!r}; check that config node's keys and values.") from None


def config_dirs() -> list[Path]:
    """The file config folders of this run (``--config-dir`` ones first, then the package's)."""
    sources = HydraConfig.get().runtime.config_sources
    return [Path(s.path) for s in sources if s.schema == "file" and Path(s.path).is_dir()]


def check_compatibility(cfg: DictConfig) -> None:
    """Fail early when a chosen dataset, model or loss does not fit the chosen task.

    The task config lists what it accepts (``task.accepts``); choices come from Hydra.
    """
    compatibility.check_config(cfg, dict(HydraConfig.get().runtime.choices), config_dirs())


def prepare_dataset(dataset_cfg: DictConfig, data_dir: str) -> Path:
    """Prepare (or reuse) the dataset folder for ``dataset_cfg``; return its path."""
    preparer = instantiate_checked(dataset_cfg.preparer)
    return preparer.prepare(data_dir)


def instantiate_each(group_cfg: DictConfig | None) -> list:
    """Instantiate every node with a ``_target_`` under a dict-shaped group (loggers, callbacks)."""
    if not group_cfg:
        return []
    return [instantiate_checked(node) for node in group_cfg.values() if node and "_target_" in node]


def build_trainer(trainer_cfg: DictConfig, loggers: list, callbacks: list) -> pl.Trainer:
    return instantiate_checked(trainer_cfg, logger=loggers or False, callbacks=callbacks)


def stage_metrics(trainer: pl.Trainer, stages: tuple[str, ...]) -> dict[str, float]:
    """Epoch-level metrics named ``stage/name`` (per-batch ``*_batch`` keys excluded)."""
    metrics = {}
    for key, value in trainer.callback_metrics.items():
        stage = key.split("/", 1)[0]
        if stage in stages and not key.endswith("_batch"):
            metrics[key] = float(value)
    return metrics


def json_number(value: float) -> float | str:
    """JSON has no inf/nan: write them as strings."""
    return value if math.isfinite(value) else str(value)


def write_results(run_dir: Path, metrics: dict[str, float], status: str, started: float, **extra: Any) -> Path:
    """Write ``run_dir/results.json``: metrics, status, wall_seconds, run_dir and extras."""
    results = {key: json_number(value) for key, value in sorted(metrics.items())}
    results.update(status=status, wall_seconds=round(time.time() - started, 3), run_dir=str(run_dir), **extra)
    return write_json_atomic(run_dir / RESULTS_FILE, results)


class RunRecord:
    """Context manager that records a run in its dir: on entry ``config.yaml`` (the resolved
    config) and ``run.json`` (run id, command line, package versions, git commit); on exit
    ``results.json`` with ``metrics`` and ``extra`` and a status of ``completed``, ``failed``
    (with the error) or ``interrupted``; the W&B run, if any, is finished either way."""

    def __init__(self, run_dir: Path, run_config: dict | None, run_id: str, **extra: Any) -> None:
        self.run_dir, self.started = run_dir, time.time()
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
        if run_config is not None:
            write_text_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(run_config))
        write_json_atomic(run_dir / RUN_FILE, {"run_id": run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                               **describe_environment()})

    def __enter__(self) -> "RunRecord":
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            status, error = "completed", {}
        elif isinstance(exc, (SIGTERMException, KeyboardInterrupt, SystemExit)):
            status, error = "interrupted", {"error": "interrupted (SIGTERM or Ctrl+C); re-run to resume"}
        else:
            status, error = "failed", {"error": str(exc) or type(exc).__name__}
        write_results(self.run_dir, self.metrics, status, self.started, **self.extra, **error)
        finish_wandb(self.metrics, status)


def threads_per_job(cfg: DictConfig) -> int | None:
    """torch threads for this job: ``threads`` when set; in a parallel multirun, the cores
    divided by the launcher's parallel jobs (joblib's ``n_jobs``, submitit's
    ``cpus_per_task``), so that jobs x threads never exceeds the cores; else torch's default."""
    if cfg.get("threads"):
        return int(cfg.threads)
    if not in_multirun():
        return None
    launcher, cores = HydraConfig.get().launcher, len(os.sched_getaffinity(0))
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return None
    n_jobs = int(n_jobs) if n_jobs > 0 else max(1, cores + 1 + int(n_jobs))  # joblib: -1 = all cores
    return max(1, cores // n_jobs)


def set_threads(cfg: DictConfig) -> None:
    threads = threads_per_job(cfg)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        log.info("Using %d torch thread(s) per job.", threads)


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


@dataclass
class JobFailure:
    """What a failed job of a multirun returns instead of raising, so the sweep goes on:
    sweepers that read a score (Optuna) record the trial as failed, and the multirun's
    report (:mod:`speechexp.sweep`) lists the failure from the job's ``results.json``."""

    error: str

    def __float__(self) -> float:
        raise ValueError(self.error)

    def __str__(self) -> str:
        return f"no score, the job failed: {self.error}"


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def entry_point(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task function so that user errors are one line without a traceback.

    A single run prints ``Error: <sentence>`` on stderr and exits 1 (an interruption:
    ``Interrupted: ...`` and 128 + the signal). In a multirun a failing job, whatever the
    exception, prints its error and returns :class:`JobFailure`, and the sweep runs every
    other job.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SIGTERMException:
            print("Interrupted: training stopped and saved checkpoints/last.ckpt; run the same command "
                  "again to resume.", file=sys.stderr, flush=True)
            sys.exit(128 + signal.SIGTERM)
        except SpeechexpError as exc:
            print(f"Error: {exc}", file=sys.stderr, flush=True)
            if in_multirun():
                return JobFailure(str(exc))
            sys.exit(1)
        except Exception as exc:
            if not in_multirun():
                raise
            log.exception("Job failed")
            return JobFailure(f"{type(exc).__name__}: {exc}")

    return wrapper


def resolved_container(cfg: DictConfig) -> dict:
    """The config as plain data with interpolations resolved (to store with weights)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False, enum_to_str=True)


def build_task(run_cfg: DictConfig, datamodule: pl.LightningDataModule, **overrides: Any) -> pl.LightningModule:
    """Instantiate the task's LightningModule with its model, loss and optimizer.

    What the model and task need from the data (feature size, vocabulary, label names)
    comes from the datamodule's optional ``model_kwargs()`` and ``task_kwargs()``.
    """
    model_kwargs = getattr(datamodule, "model_kwargs", dict)()
    task_kwargs = getattr(datamodule, "task_kwargs", dict)()
    model = instantiate_checked(run_cfg.model, **model_kwargs)
    loss = instantiate_checked(run_cfg.loss)
    return instantiate_checked(run_cfg.task.module, model=model, loss=loss,
                               optimizer=run_cfg.optimizer, scheduler=run_cfg.get("scheduler"),
                               **task_kwargs, **overrides)
