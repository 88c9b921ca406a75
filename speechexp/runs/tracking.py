"""One Weights & Biases run per run dir: named after the job's overrides, grouped by its
multirun, resumed with the run dir, finished when the job ends (also when it fails)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from speechexp.runs.plan import is_cosmetic

WANDB_TARGETS = ("pytorch_lightning.loggers.WandbLogger", "lightning.pytorch.loggers.WandbLogger")


def job_label(overrides: list[str], fallback: str) -> str:
    """The overrides that define a job (cosmetic ones left out), or ``fallback``."""
    kept = [o for o in overrides if not is_cosmetic(o.split("=", 1)[0])]
    return " ".join(kept) or fallback


def sweep_group(sweep_name: str | None) -> str | None:
    """``sweep_name``, else the multirun folder's name; ``None`` for a single run."""
    if sweep_name:
        return sweep_name
    hydra = HydraConfig.get()
    return Path(hydra.sweep.dir).name if hydra.mode == RunMode.MULTIRUN else None


def configure_wandb(cfg: DictConfig, run_id: str) -> None:
    """Fill in the W&B logger's ``id`` (resumed with the run dir), and its ``name`` and
    ``group`` where the config leaves them ``null``."""
    if "wandb" not in sys.modules:
        # A W&B service address inherited from a parent process (a notebook, a test runner)
        # would hold this run id "in use" after a killed run; each training process gets its own.
        os.environ.pop("WANDB_SERVICE", None)
    for node in (cfg.get("logger") or {}).values():
        if node and node.get("_target_") in WANDB_TARGETS:
            with open_dict(node):
                node.id = run_id
                node.resume = "allow"
                if node.get("name") is None:
                    node.name = job_label(list(HydraConfig.get().overrides.task), cfg.get("name") or "speechexp")
                if node.get("group") is None:
                    node.group = sweep_group(cfg.get("sweep_name"))


def finish_wandb(metrics: dict[str, float], status: str) -> None:
    """Write the final metrics into the active W&B run's summary and finish it."""
    wandb = sys.modules.get("wandb")  # only loaded when a W&B logger was used
    if wandb is None or wandb.run is None:
        return
    wandb.run.summary.update({**metrics, "status": status})
    wandb.finish(exit_code=0 if status == "completed" else 1)
