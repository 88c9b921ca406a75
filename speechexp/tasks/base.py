"""What every task shares: optimizer/scheduler from config partials, config in checkpoints,
and gathering per-process export rows to rank 0 under DDP."""

from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
import torch
import torch.distributed as dist

from speechexp.runs.checkpoints import CONFIG_KEY, plain_data
from speechexp.tasks.schedules import schedule_interval, takes_steps_from_trainer


class ConfiguredTask(pl.LightningModule):
    """A LightningModule built from configs.

    Args:
        optimizer: a partial ``torch.optim`` constructor taking ``params``.
        scheduler: optional partial LR scheduler taking ``optimizer``; a plateau
            scheduler follows ``monitor``. A scheduler class with ``interval = "step"``
            (see :mod:`speechexp.tasks.schedules`) is stepped per optimizer step, and
            gets ``total_steps`` from the trainer when its config leaves it ``None``.
        run_config: the resolved run config as plain data, saved with the weights so the
            checkpoint alone rebuilds dataset, model and task.
    """

    def __init__(self, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, monitor: str = "val/loss",
                 run_config: dict | None = None):
        super().__init__()
        self.optimizer_factory, self.scheduler_factory, self.monitor = optimizer, scheduler, monitor
        self.run_config = run_config

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs: dict[str, Any] = {}
        if takes_steps_from_trainer(self.scheduler_factory):
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor,
                                                         "interval": schedule_interval(self.scheduler_factory)}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # NeMo-style: the checkpoint alone rebuilds dataset, model and task (speechexp-eval)
        if self.run_config is not None:
            checkpoint[CONFIG_KEY] = self.run_config
        # schedule, optimizer and callback states as plain data: weights_only loads them
        for key in ("lr_schedulers", "optimizer_states", "callbacks"):
            if key in checkpoint:
                checkpoint[key] = plain_data(checkpoint[key])

    def gather_rows(self, rows: list) -> list | None:
        """Every process's ``rows`` concatenated on rank 0 (``None`` elsewhere); the rows
        themselves when not distributed. Exports are then written once, by rank 0."""
        if self.trainer.world_size == 1 or not dist.is_available() or not dist.is_initialized():
            return rows
        gathered: list[list | None] = [None] * self.trainer.world_size if self.global_rank == 0 else []
        dist.gather_object(rows, gathered if self.global_rank == 0 else None, dst=0)
        return [row for part in gathered for row in part] if self.global_rank == 0 else None
