"""CTC loss written from scratch, a drop-in replacement for ``torch.nn.functional.ctc_loss``.

Values and gradients match the built-in (to float rounding), including its
conventions: per-sample losses are ``inf`` exactly when no alignment fits, the
gradient w.r.t. ``log_probs`` is the built-in's ``exp(log_probs) - gamma`` (gamma
= posterior occupation of each class; this is the true gradient w.r.t. the logits
through ``log_softmax``), frames beyond an input length get a zero gradient, and
samples with an infinite loss get NaN gradients unless ``zero_infinity``.

Backends, picked from the device unless ``backend=`` says otherwise:
* ``'numba'`` (CPU): a numba kernel (``ctc_kernels``), faster than the built-in;
* ``'triton'`` (CUDA): a Triton kernel (``ctc_triton``), one launch for the whole
  forward-backward pass; with CPU tensors it runs in Triton's interpreter (tests);
* ``'torch'`` (any device): vectorised torch code (``ctc_torch``) with a Python loop
  over the frames; the fallback without numba (CPU) or triton (CUDA).

Half-precision log-probs (float16/bfloat16, e.g. under ``precision=16-mixed``) are
computed in float32 by :class:`CTCLoss` (the function itself asks for float32/64).

Shapes: T frames, N batch, C classes (blank included), S padded target length.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechexp.losses.ctc_torch import ctc_forward_backward_torch, ctc_viterbi_torch

try:  # numba is optional: the torch path covers everything, only slower on CPU
    from speechexp.losses import ctc_kernels
except ImportError:  # pragma: no cover - exercised only without numba
    ctc_kernels = None

REDUCTIONS = ("none", "mean", "sum")
BACKENDS = ("numba", "torch", "triton")
HALF_DTYPES = (torch.float16, torch.bfloat16)

Lengths = torch.Tensor | Sequence[int] | int


@dataclass
class _Batch:
    """Validated inputs in one canonical form."""

    log_probs: torch.Tensor  # (T, N, C)
    targets: torch.Tensor  # (N, S) int64, padded
    input_lengths: torch.Tensor  # (N,) int64, on log_probs.device
    target_lengths: torch.Tensor  # (N,) int64, on log_probs.device
    unbatched: bool


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


def _prepare(log_probs, targets, input_lengths, target_lengths, blank) -> _Batch:
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
    return _Batch(lp, padded, il, tl, unbatched)


_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None
_triton_failed: str | None = None  # why an automatically chosen Triton kernel failed, if it did


def _ctc_triton():
    """The Triton module, imported on first use (importing triton takes a second)."""
    from speechexp.losses import ctc_triton

    return ctc_triton


def _default_backend(device: torch.device) -> str:
    if device.type == "cpu":
        return "numba" if ctc_kernels is not None else "torch"
    if device.type == "cuda" and _TRITON_INSTALLED and _triton_failed is None:
        return "triton"
    return "torch"


def _check_backend(backend: str | None, device: torch.device) -> tuple[str, bool]:
    """(backend to use, whether it was chosen automatically)."""
    if backend is None:
        return _default_backend(device), True
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}.")
    if backend == "numba" and (ctc_kernels is None or device.type != "cpu"):
        raise ValueError("backend 'numba' needs numba installed and log_probs on the CPU.")
    if backend == "triton" and (not _TRITON_INSTALLED or device.type not in ("cuda", "cpu")):
        raise ValueError("backend 'triton' needs the triton package and log_probs on CUDA (or the CPU, interpreted).")
    return backend, False


def _with_triton_fallback(auto: bool, run_triton, run_torch):
    """Run the Triton kernel; if it was chosen automatically and cannot run here (no
    compiler for this GPU, a driver problem), warn once and use the torch path from
    then on. An explicitly requested backend='triton' raises instead."""
    global _triton_failed
    if not auto:
        return run_triton()
    try:
        return run_triton()
    except torch.cuda.OutOfMemoryError:
        raise  # the torch path needs more memory, not less
    except Exception as exc:  # noqa: BLE001 - any failure to compile/launch: fall back
        _triton_failed = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"speechexp CTC: the Triton kernel failed ({_triton_failed}); using the slower torch "
                      "path from now on. Pass backend='triton' to see the error.", RuntimeWarning, stacklevel=3)
        return run_torch()


# How the numba kernel uses threads: "auto" splits the batch over torch.get_num_threads()
# Python threads when it holds enough lattice work (a small batch runs on the calling
# thread); "serial" always uses the calling thread; "pool" always splits. Measured
# inside multitask training steps by scripts/bench_ctc_step.py (issue 9): the CTC is
# about 1% of a step, no policy is measurably faster, and right after a parallel torch
# op (OpenMP workers still spinning) the custom loss slows down no more than the
# built-in does (both about 1.1-1.2x), so "auto" stays the default.
NUMBA_THREADING = "auto"
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ctc")
    return _POOLS[workers]


def _balanced_chunks(batch: _Batch, workers: int, threshold: bool = True) -> list[np.ndarray]:
    """Split sample indices into <= ``workers`` lists of similar lattice work
    (longest first, each to the least loaded list)."""
    n_frames, n, n_classes = batch.log_probs.shape
    cost = batch.input_lengths.numpy() * (2 * batch.target_lengths.numpy() + 1 + n_classes)
    if threshold:  # tiny batches: threads cost more than they save
        workers = min(workers, int(cost.sum()) // 20_000 + 1)
    workers = max(1, min(workers, n))
    if workers == 1:
        return [np.arange(n, dtype=np.int64)]
    loads = np.zeros(workers)
    lists: list[list[int]] = [[] for _ in range(workers)]
    for b in np.argsort(-cost, kind="stable"):
        k = int(np.argmin(loads))
        lists[k].append(int(b))
        loads[k] += cost[b]
    return [np.asarray(sorted(x), dtype=np.int64) for x in lists if x]


def _forward_backward_numba(batch: _Batch, blank: int, want_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Numba kernel on the whole batch; samples it flags are redone in float64 log space."""
    lp = batch.log_probs.detach().contiguous()
    n = lp.shape[1]
    loss = np.empty(n)
    status = np.zeros(n, dtype=np.int8)
    # exp(lp) vectorised by torch; the kernel subtracts the occupations in place
    grad = torch.exp(lp) if want_grad else torch.empty((1, 1, 1), dtype=lp.dtype)
    args = (lp.numpy(), np.ascontiguousarray(batch.targets.numpy()), batch.input_lengths.numpy(), batch.target_lengths.numpy())
    workers = 1 if NUMBA_THREADING == "serial" else torch.get_num_threads()
    chunks = _balanced_chunks(batch, workers, threshold=NUMBA_THREADING != "pool")

    def run(order: np.ndarray) -> None:
        ctc_kernels.ctc_forward_backward(*args, int(blank), want_grad, order, loss, grad.numpy(), status)

    if len(chunks) == 1:
        run(chunks[0])
    else:  # the kernel releases the GIL; same thread count as torch's own CTC
        list(_thread_pool(len(chunks)).map(run, chunks))
    loss_t = torch.from_numpy(loss)
    redo = torch.from_numpy(np.flatnonzero(status))
    if redo.numel() > 0:
        sub_loss, sub_grad = ctc_forward_backward_torch(
            lp[:, redo].double(), batch.targets[redo], batch.input_lengths[redo], batch.target_lengths[redo], blank, want_grad
        )
        loss_t[redo] = sub_loss
        if want_grad:
            grad[:, redo] = sub_grad.to(grad.dtype)
    return loss_t.to(lp.dtype), (grad if want_grad else None)


class _CTCFunction(torch.autograd.Function):
    """Per-sample CTC losses (N,) with the analytic alpha-beta gradient."""

    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, backend, auto):
        batch = _Batch(log_probs, targets, input_lengths, target_lengths, unbatched=False)
        want_grad = ctx.needs_input_grad[0]
        args = (log_probs.detach(), targets, input_lengths, target_lengths, blank, want_grad)
        if backend == "numba":
            loss, grad = _forward_backward_numba(batch, blank, want_grad)
        elif backend == "triton":
            loss, grad = _with_triton_fallback(
                auto, lambda: _ctc_triton().ctc_forward_backward_triton(*args), lambda: ctc_forward_backward_torch(*args)
            )
        else:
            loss, grad = ctc_forward_backward_torch(*args)
        if zero_infinity:
            infinite = torch.isinf(loss)
            loss = loss.masked_fill(infinite, 0.0)
            if grad is not None:
                grad.masked_fill_(infinite[None, :, None], 0.0)
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype)[None, :, None], None, None, None, None, None, None, None


def ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Connectionist Temporal Classification loss, same contract as ``F.ctc_loss``.

    Args:
        log_probs: ``(T, N, C)`` or unbatched ``(T, C)`` log-probabilities, float32/64.
        targets: padded ``(N, S)``, concatenated ``(sum(target_lengths),)``, or
            unbatched ``(S,)``; labels in ``[0, C)`` other than ``blank``.
        input_lengths: ``(N,)`` tensor or list (int32/int64), each <= T; a scalar
            when unbatched.
        target_lengths: ``(N,)`` tensor or list, each <= S; a scalar when unbatched.
        blank: index of the blank class.
        reduction: ``'none'`` -> ``(N,)`` (``()`` unbatched); ``'sum'`` -> ``()``;
            ``'mean'`` -> ``()``: each loss divided by its target length (clamped
            to 1), then averaged over the batch.
        zero_infinity: replace infinite losses (no alignment fits) and their
            gradients by zero.
        backend: ``'numba'`` (CPU only), ``'triton'`` (CUDA; CPU tensors run in
            Triton's interpreter) or ``'torch'``; default: numba on CPU, triton on CUDA
            (each falling back to torch when its package is missing).

    Raises:
        ValueError: naming the offending argument when the inputs are invalid.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    batch = _prepare(log_probs, targets, input_lengths, target_lengths, blank)
    backend, auto = _check_backend(backend, batch.log_probs.device)
    losses = _CTCFunction.apply(
        batch.log_probs, batch.targets, batch.input_lengths, batch.target_lengths, int(blank), bool(zero_infinity),
        backend, auto,
    )
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return (losses / batch.target_lengths.clamp(min=1).to(losses.dtype)).mean()
    return losses[0] if batch.unbatched else losses


class CTCLoss(nn.Module):
    """Module form of :func:`ctc_loss`, a drop-in for ``torch.nn.CTCLoss``.

    ``forward(log_probs (T, N, C), targets (N, S) or (sum L,), input_lengths (N,),
    target_lengths (N,))`` returns the reduced loss (``(N,)`` for ``'none'``).
    float16/bfloat16 log-probs (mixed precision) are upcast to float32, so the loss is
    never computed in half precision; its gradient flows back in their dtype.
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
        self.blank = blank
        self.reduction = reduction
        self.zero_infinity = zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        if isinstance(log_probs, torch.Tensor) and log_probs.dtype in HALF_DTYPES:
            log_probs = log_probs.float()
        return ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction, self.zero_infinity)

    def extra_repr(self) -> str:
        return f"blank={self.blank}, reduction={self.reduction!r}, zero_infinity={self.zero_infinity}"


def ctc_alignment(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
    *,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Viterbi (max-product) CTC alignment.

    Args: as :func:`ctc_loss` (``(T, N, C)`` or unbatched ``(T, C)``); ``backend``:
        ``'triton'`` (default on CUDA: one batched kernel launch) or ``'torch'``
        (default elsewhere; ``'numba'`` means ``'torch'`` here). Both give the same
        path and score.

    Returns:
        path: ``(N, T)`` int64 class id emitted at each frame (blank or a label)
            on the single most probable alignment; ``-1`` for frames
            ``t >= input_length`` and for every frame of a sample no alignment
            fits. Unbatched input gives ``(T,)``.
        score: ``(N,)`` (``()`` unbatched) log-probability of that path: the sum of
            ``log_probs`` along it, ``-inf`` when infeasible. Never above the CTC
            log-likelihood ``-ctc_loss(..., reduction='none')``.
    """
    batch = _prepare(log_probs, targets, input_lengths, target_lengths, blank)
    backend, auto = _check_backend(backend, batch.log_probs.device)
    args = (batch.log_probs.detach(), batch.targets, batch.input_lengths, batch.target_lengths, int(blank))
    with torch.no_grad():
        if backend == "triton":
            path, score = _with_triton_fallback(
                auto, lambda: _ctc_triton().ctc_viterbi_triton(*args), lambda: ctc_viterbi_torch(*args)
            )
        else:
            path, score = ctc_viterbi_torch(*args)
    if batch.unbatched:
        return path[0], score[0]
    return path, score
