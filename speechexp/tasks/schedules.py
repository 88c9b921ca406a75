"""Learning-rate schedules whose length is the training budget, and how they continue.

Each class has ``interval`` (``"step"``: the task tells Lightning to step it after every
optimizer step, ``"epoch"``: once per epoch) and takes ``total_steps``; for per-step
schedules ``None`` is filled in by the task from the trainer
(``trainer.estimated_stepping_batches``), so a config never has to know the number of
batches per epoch.

**Continuing with a longer budget** (``trainer.max_epochs=25`` for a run trained to 15):
the checkpoint's schedule state was made for the old total. Restoring it into a schedule
built for the new total switches to a *continuation phase*: the learning rate goes from
the value the run had reached to the schedule's floor (one-cycle:
``max_lr / (div_factor * final_div_factor)``; warm-up + cosine: ``final_factor × lr``)
along a half cosine over the added steps. A finished one-cycle run thus goes on at its
floor rate and keeps what it learned; a run stopped mid-schedule decays smoothly from
where it was. The phase is stored in the schedule's state, so a continued run resumes
and continues again the same way.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


def schedule_class(factory: Callable[..., Any]) -> Callable[..., Any]:
    """The class a schedule's config partial builds."""
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory


def schedule_interval(factory: Callable[..., Any]) -> str:
    """How often a schedule (a partial of its class) is stepped: ``"step"`` or ``"epoch"``."""
    return getattr(schedule_class(factory), "interval", "epoch")


def takes_steps_from_trainer(factory: Callable[..., Any]) -> bool:
    """Whether a per-step schedule's config leaves ``total_steps`` to be filled in (``None``)."""
    return (schedule_interval(factory) == "step" and getattr(factory, "keywords", {}).get("total_steps") is None
            and "total_steps" in inspect.signature(schedule_class(factory)).parameters)


def _check_total(total_steps: int | None, name: str) -> int:
    if total_steps is None or int(total_steps) < 1:
        raise ValueError(f"{name} needs total_steps (the task fills it in from the trainer's step count)")
    return int(total_steps)


def continuation_lrs(phase: dict, step: int) -> list[float]:
    """The learning rates at ``step`` of a continuation ``phase`` (plain data: ``start``,
    ``total``, ``start_lrs``, ``end_lrs``): a half cosine from ``start_lrs`` to ``end_lrs``."""
    progress = min(1.0, max(0.0, (step - phase["start"]) / max(1, phase["total"] - phase["start"])))
    weight = 0.5 * (1 + math.cos(math.pi * progress))
    return [end + (start - end) * weight for start, end in zip(phase["start_lrs"], phase["end_lrs"])]


class Continuable:
    """Mixin for a schedule with ``total_steps``: restoring a state saved for another total
    starts a continuation phase (see the module docstring) instead of failing or jumping."""

    continuation: dict | None = None  # plain data, so it is saved in the state and loads as data

    def floor_lrs(self) -> list[float]:  # pragma: no cover - each schedule defines its floor
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict) -> None:
        total = self.total_steps
        super().load_state_dict(state_dict)  # type: ignore[misc]
        if state_dict.get("total_steps", total) != total:
            self.total_steps = total
            self.continuation = {"start": int(self.last_epoch), "total": int(total),
                                 "start_lrs": [float(lr) for lr in state_dict["_last_lr"]],
                                 "end_lrs": [float(lr) for lr in self.floor_lrs()]}

    def get_lr(self) -> list[float]:
        if self.continuation is not None:
            return continuation_lrs(self.continuation, self.last_epoch)
        return super().get_lr()  # type: ignore[misc]


class OneCycleSchedule(Continuable, OneCycleLR):
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

    def floor_lrs(self) -> list[float]:
        return [group["min_lr"] for group in self.optimizer.param_groups]


class OneCycleEpochSchedule(OneCycleSchedule):
    """:class:`OneCycleSchedule` stepped once per epoch (``total_steps`` = epochs)."""

    interval = "epoch"


class WarmupCosineSchedule(Continuable, LambdaLR):
    """Linear warm-up from 0 over ``warmup_fraction`` of the steps to the optimizer's
    learning rate, then cosine decay to ``final_factor`` times it; stepped per optimizer step."""

    interval = "step"

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int | None = None,
                 warmup_fraction: float = 0.05, final_factor: float = 0.01):
        total = _check_total(total_steps, "WarmupCosineSchedule")
        self.total_steps, self.final_factor = total, final_factor
        warmup = max(1, int(round(warmup_fraction * total)))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

        super().__init__(optimizer, factor)

    def floor_lrs(self) -> list[float]:
        return [self.final_factor * base_lr for base_lr in self.base_lrs]
