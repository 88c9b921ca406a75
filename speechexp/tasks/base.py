"""What every task shares: optimizer/scheduler from config partials, config in checkpoints."""

from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
import torch


class ConfiguredTask(pl.LightningModule):
    """A LightningModule built from configs.

    Args:
        optimizer: a partial ``torch.optim`` constructor taking ``params``.
        scheduler: optional partial LR scheduler taking ``optimizer``; a plateau
            scheduler follows ``monitor``.
    """

    def __init__(self, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., Any] | None = None, monitor: str = "val/loss"):
        super().__init__()
        self.optimizer_factory, self.scheduler_factory, self.monitor = optimizer, scheduler, monitor
        self.run_config: dict | None = None  # the resolved run config, saved with the weights

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # NeMo-style: the checkpoint alone rebuilds dataset, model and task (speechexp-eval)
        if self.run_config is not None:
            checkpoint["speechexp_config"] = self.run_config
