"""The CTC's autograd function and public API: :func:`ctc_loss`, :class:`CTCLoss`,
:func:`ctc_alignment` (Viterbi) and :func:`ctc_alignment_targets` (soft, forward-backward); see
the package docstring for the contract.

Shapes: T frames, N batch, C classes (blank included), S padded target length.
"""

from __future__ import annotations

import torch
from torch import nn

from speechexp.losses.ctc.dispatch import BACKENDS, DEFAULT, THREADINGS
from speechexp.losses.ctc.inputs import HALF_DTYPES, REDUCTIONS, Lengths, check_choice, prepare


class _CTCFunction(torch.autograd.Function):
    """Per-sample CTC losses (N,) with the analytic alpha-beta gradient."""

    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity, backend, auto, threading):
        loss, grad = DEFAULT.forward_backward(backend, auto, log_probs.detach(), targets, input_lengths, target_lengths,
                                              blank, ctx.needs_input_grad[0], threading)
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
        return (grad * grad_loss.to(grad.dtype)[None, :, None],) + (None,) * 8


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
    threading: str = "auto",
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
        threading: how the numba backend uses threads, ``'auto'``, ``'serial'`` or
            ``'pool'`` (see :func:`speechexp.losses.ctc.numba.forward_backward`).

    Raises:
        ValueError: naming the offending argument when the inputs are invalid.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    check_choice("threading", threading, THREADINGS)
    batch = prepare(log_probs, targets, input_lengths, target_lengths, blank)
    backend, auto = DEFAULT.choose(backend, batch.log_probs.device)
    losses = _CTCFunction.apply(
        batch.log_probs, batch.targets, batch.input_lengths, batch.target_lengths, int(blank), bool(zero_infinity),
        backend, auto, threading,
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
    ``backend`` and ``threading`` are :func:`ctc_loss`'s (``loss.backend``,
    ``loss.threading`` in ``conf/loss/ctc_custom.yaml``).
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False,
                 backend: str | None = None, threading: str = "auto") -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        if backend is not None:
            check_choice("backend", backend, BACKENDS)
        check_choice("threading", threading, THREADINGS)
        self.blank = blank
        self.reduction = reduction
        self.zero_infinity = zero_infinity
        self.backend = backend
        self.threading = threading

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        if isinstance(log_probs, torch.Tensor) and log_probs.dtype in HALF_DTYPES:
            log_probs = log_probs.float()
        return ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction, self.zero_infinity,
                        backend=self.backend, threading=self.threading)

    def extra_repr(self) -> str:
        return (f"blank={self.blank}, reduction={self.reduction!r}, zero_infinity={self.zero_infinity}, "
                f"backend={self.backend!r}, threading={self.threading!r}")


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
    batch = prepare(log_probs, targets, input_lengths, target_lengths, blank)
    backend, auto = DEFAULT.choose(backend, batch.log_probs.device)
    with torch.no_grad():
        path, score = DEFAULT.viterbi(backend, auto, batch.log_probs.detach(), batch.targets, batch.input_lengths,
                                      batch.target_lengths, int(blank))
    if batch.unbatched:
        return path[0], score[0]
    return path, score


def ctc_alignment_targets(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Soft CTC alignment: each frame's posterior over the classes given the transcript.

    The occupation probabilities ``gamma[t, n, c] = P(frame t emits class c | targets[n],
    log_probs)`` from the forward-backward pass of :func:`ctc_loss`, summed over the
    positions of the extended label sequence that carry class ``c``. They equal
    ``exp(log_probs) - ∂L/∂log_probs`` of the summed loss (the gradient the loss hands
    back through ``log_softmax``); :func:`ctc_alignment` is their hard (Viterbi) counterpart.

    Args: as :func:`ctc_alignment` (``(T, N, C)`` or unbatched ``(T, C)``).

    Returns:
        ``(T, N, C)`` (``(T, C)`` unbatched), the dtype of ``log_probs``: on each frame
        ``t < input_length`` a distribution over the classes (non-negative, summing to 1);
        zero on frames beyond the input length and on every frame of a sample no
        alignment fits (its loss would be infinite).
    """
    batch = prepare(log_probs, targets, input_lengths, target_lengths, blank)
    backend, auto = DEFAULT.choose(backend, batch.log_probs.device)
    lp = batch.log_probs.detach()
    with torch.no_grad():
        loss, grad = DEFAULT.forward_backward(backend, auto, lp, batch.targets, batch.input_lengths,
                                              batch.target_lengths, int(blank), True)
        frames = torch.arange(lp.shape[0], device=lp.device)[:, None]
        valid = (frames < batch.input_lengths.to(lp.device)[None, :]) & torch.isfinite(loss).to(lp.device)[None, :]
        posteriors = (lp.exp() - grad.to(lp.dtype)).clamp(min=0)
        posteriors = torch.where(valid[..., None], posteriors, torch.zeros((), dtype=lp.dtype, device=lp.device))
    return posteriors[:, 0] if batch.unbatched else posteriors
