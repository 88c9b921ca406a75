"""Learning-rate schedules stepped once per optimizer step.

Each class has ``interval = "step"`` (the task tells Lightning to step it after every
optimizer step) and takes ``total_steps=None``: the task fills it in from the trainer
(``trainer.estimated_stepping_batches``), so a config never has to know the number of
batches per epoch.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


def _check_total(total_steps: int | None, name: str) -> int:
    if total_steps is None or int(total_steps) < 1:
        raise ValueError(f"{name} needs total_steps (the task fills it in from the trainer's step count)")
    return int(total_steps)


class OneCycleSchedule(OneCycleLR):
    """One cycle over the whole run (Smith & Topin, 2019), stepped per optimizer step:
    the rate rises from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of the
    steps, then anneals (cosine) to ``max_lr / (div_factor * final_div_factor)``."""

    interval = "step"

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int | None = None,
                 pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True):
        super().__init__(optimizer, max_lr=max_lr, total_steps=_check_total(total_steps, "OneCycleSchedule"),
                         pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
                         anneal_strategy=anneal_strategy, cycle_momentum=cycle_momentum)


class WarmupCosineSchedule(LambdaLR):
    """Linear warm-up from 0 over ``warmup_fraction`` of the steps to the optimizer's
    learning rate, then cosine decay to ``final_factor`` times it; stepped per optimizer step."""

    interval = "step"

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int | None = None,
                 warmup_fraction: float = 0.05, final_factor: float = 0.01):
        total = _check_total(total_steps, "WarmupCosineSchedule")
        warmup = max(1, int(round(warmup_fraction * total)))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

        super().__init__(optimizer, factor)
