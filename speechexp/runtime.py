"""What every entry point shares: compatibility checks, instantiation with clear errors,
trainer assembly, results.json, and turning user errors into one-line messages."""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from speechexp.errors import SpeechexpError
from speechexp.io import write_json_atomic

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


def check_compatibility(cfg: DictConfig) -> None:
    """Fail early when a chosen dataset, model or loss does not fit the chosen task.

    The task config lists what it accepts (``task.accepts``); choices come from Hydra.
    """
    choices = HydraConfig.get().runtime.choices
    task = choices.get("task")
    for group, allowed in cfg.task.accepts.items():
        chosen = choices.get(group)
        if chosen is not None and chosen not in allowed:
            options = ", ".join(f"{group}={a}" for a in allowed)
            raise SpeechexpError(
                f"{group}={chosen} cannot be used with task={task}; choose one of {options}, "
                f"or pick an experiment whose task fits {group}={chosen}."
            )


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
    return write_json_atomic(run_dir / "results.json", results)


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def report_user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print :class:`SpeechexpError` as one line on stderr and exit 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpeechexpError as exc:
            print(f"Error: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)

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
