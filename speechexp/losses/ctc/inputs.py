"""Checks of the CTC's arguments, and the one canonical form the backends receive.

``ctc_loss`` accepts what ``F.ctc_loss`` accepts (batched ``(T, N, C)`` or unbatched
``(T, C)`` log-probs, padded ``(N, S)`` or concatenated targets, lengths as tensors,
lists or ints); :func:`prepare` turns that into a :class:`CTCBatch` or raises a
``ValueError`` naming the offending argument, so the backends never see bad input.

Shapes: T frames, N batch, C classes (blank included), S padded target length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

REDUCTIONS = ("none", "mean", "sum")
HALF_DTYPES = (torch.float16, torch.bfloat16)

Lengths = torch.Tensor | Sequence[int] | int


@dataclass
class CTCBatch:
    """Validated inputs in one canonical form."""

    log_probs: torch.Tensor  # (T, N, C)
    targets: torch.Tensor  # (N, S) int64, padded
    input_lengths: torch.Tensor  # (N,) int64, on log_probs.device
    target_lengths: torch.Tensor  # (N,) int64, on log_probs.device
    unbatched: bool


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """A ``ValueError`` unless ``value`` is one of ``choices`` (a string option)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}.")


def _check_log_probs(log_probs: torch.Tensor) -> None:
    if not isinstance(log_probs, torch.Tensor):
        raise ValueError(f"log_probs must be a torch.Tensor, got {type(log_probs).__name__}.")
    if log_probs.dim() not in (2, 3):
        raise ValueError(f"log_probs must have shape (T, N, C) or (T, C), got {tuple(log_probs.shape)}.")
    if log_probs.dtype not in (torch.float32, torch.float64):
        hint = " (CTCLoss upcasts half precision; call .float() first)" if log_probs.dtype in HALF_DTYPES else ""
        raise ValueError(f"log_probs must be float32 or float64, got {log_probs.dtype}{hint}.")
    if log_probs.shape[-1] < 1:
        raise ValueError("log_probs must have at least one class (the blank) in its last dimension.")


def _as_lengths(value: Lengths, name: str, n: int, unbatched: bool, device: torch.device) -> torch.Tensor:
    """Lengths as an int64 tensor (N,) on ``device``; accepts tensors, lists and (unbatched) ints."""
    if isinstance(value, torch.Tensor):
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise ValueError(f"{name} must hold integers, got dtype {value.dtype}.")
        tensor = value.detach().to(device=device, dtype=torch.long)
    else:
        try:
            array = np.asarray(value)
        except Exception as exc:  # noqa: BLE001 - any unconvertible object is a user error
            raise ValueError(f"{name} must be a tensor, a list of ints or an int, got {type(value).__name__}.") from exc
        if array.dtype.kind not in "iu" and array.size > 0:
            raise ValueError(f"{name} must hold integers, got {array.dtype}.")
        tensor = torch.as_tensor(array.astype(np.int64), device=device)
    if unbatched and tensor.dim() == 0:
        tensor = tensor.reshape(1)
    if tensor.dim() != 1 or tensor.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), one length per sample, got {tuple(tensor.shape)}.")
    if n > 0 and int(tensor.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got {tensor.tolist()}.")
    return tensor


def _check_labels(labels: torch.Tensor, n_classes: int, blank: int) -> None:
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_classes:
        raise ValueError(f"targets must hold class indices in [0, {n_classes}), found {low if low < 0 else high}.")
    if bool((labels == blank).any()):
        raise ValueError(f"targets must not contain the blank index {blank} within the target lengths.")


def _padded_targets(targets: torch.Tensor, target_lengths: torch.Tensor, n: int, unbatched: bool) -> torch.Tensor:
    """Targets as padded (N, S); validates the layout against the target lengths."""
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"targets must be a torch.Tensor, got {type(targets).__name__}.")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must hold integer class indices, got dtype {targets.dtype}.")
    targets = targets.to(device=target_lengths.device, dtype=torch.long)
    if unbatched and targets.dim() == 1:
        targets = targets[None]
    if targets.dim() == 2:
        if targets.shape[0] != n:
            raise ValueError(f"targets has {targets.shape[0]} rows but the batch has {n} samples.")
        if n > 0 and int(target_lengths.max()) > targets.shape[1]:
            raise ValueError(f"target_lengths exceed the padded targets width {targets.shape[1]}: {target_lengths.tolist()}.")
        return targets
    if targets.dim() != 1:
        raise ValueError(f"targets must be (N, S) padded or 1-D concatenated, got shape {tuple(targets.shape)}.")
    total = int(target_lengths.sum())
    if total > targets.shape[0]:
        raise ValueError(f"target_lengths sum to {total} but the concatenated targets hold {targets.shape[0]} labels.")
    # scatter the concatenation into rows; padding is never read
    s_max = int(target_lengths.max()) if n > 0 else 0
    padded = torch.zeros((n, s_max), dtype=torch.long, device=targets.device)
    rows = torch.repeat_interleave(torch.arange(n, device=targets.device), target_lengths)
    starts = torch.cumsum(target_lengths, 0) - target_lengths
    cols = torch.arange(total, device=targets.device) - torch.repeat_interleave(starts, target_lengths)
    padded[rows, cols] = targets[:total]
    return padded


def prepare(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: Lengths, target_lengths: Lengths,
            blank: int) -> CTCBatch:
    """Check the arguments of ``ctc_loss`` / ``ctc_alignment`` (see there for their
    shapes) and bring them to the form of :class:`CTCBatch`."""
    _check_log_probs(log_probs)
    unbatched = log_probs.dim() == 2
    lp = log_probs[:, None] if unbatched else log_probs
    n_frames, n, n_classes = lp.shape
    if not isinstance(blank, (int, np.integer)) or isinstance(blank, bool) or not 0 <= blank < n_classes:
        raise ValueError(f"blank must be an int in [0, {n_classes}) (the number of classes), got {blank!r}.")
    il = _as_lengths(input_lengths, "input_lengths", n, unbatched, lp.device)
    tl = _as_lengths(target_lengths, "target_lengths", n, unbatched, lp.device)
    if n > 0 and int(il.max()) > n_frames:
        raise ValueError(f"input_lengths must not exceed the {n_frames} frames of log_probs, got {il.tolist()}.")
    padded = _padded_targets(targets, tl, n, unbatched)
    in_target = torch.arange(padded.shape[1], device=padded.device)[None] < tl[:, None]
    _check_labels(padded[in_target], n_classes, int(blank))
    return CTCBatch(lp, padded, il, tl, unbatched)
