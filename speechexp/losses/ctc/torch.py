"""The ``torch`` backend (any device): log-space recursions vectorised over the batch.

Used on CUDA without triton (and on any other non-CPU device), on the CPU without numba,
for the rare samples the numba kernel hands back (see ``ctc.numba``), and for an
automatically chosen Triton kernel that cannot run. The time loop stays in Python;
every step is one batched tensor operation over (N, 2L+1) states.

Shapes: ``log_probs (T, N, C)``, ``targets (N, S)`` int64 (padding ignored),
``input_lengths (N,)`` and ``target_lengths (N,)`` int64 on the same device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_NEG_INF = float("-inf")


def extended_targets(targets: torch.Tensor, target_lengths: torch.Tensor, blank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blank-interleaved labels ``ext (N, 2S'+1)`` (S' = max target length) and the
    mask ``skip (N, 2S'+1)`` of states that may be entered from s-2 (a label
    differing from the previous label). Padding beyond a length becomes the blank."""
    n = targets.shape[0]
    s_max = int(target_lengths.max()) if n > 0 else 0
    labels = targets[:, :s_max]
    valid = torch.arange(s_max, device=targets.device) < target_lengths[:, None]
    labels = torch.where(valid, labels, torch.full_like(labels, blank))
    ext = torch.full((n, 2 * s_max + 1), blank, dtype=torch.long, device=targets.device)
    ext[:, 1::2] = labels
    skip = torch.zeros_like(ext, dtype=torch.bool)
    skip[:, 3::2] = ext[:, 3::2] != ext[:, 1:-2:2]
    return ext, skip


def _shift_right(x: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """x[:, s - k] at position s (fill for s < k)."""
    return F.pad(x[:, : x.shape[1] - k], (k, 0), value=fill) if k < x.shape[1] else torch.full_like(x, fill)


def _shift_left(x: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """x[:, s + k] at position s (fill beyond the end)."""
    return F.pad(x[:, k:], (0, k), value=fill) if k < x.shape[1] else torch.full_like(x, fill)


def _logsumexp3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    m = torch.maximum(torch.maximum(a, b), c)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)  # all -inf stays -inf, no nan
    return m + torch.log(torch.exp(a - m) + torch.exp(b - m) + torch.exp(c - m))


def _final_states(lattice_last: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Scores of the two accepting states (last label, trailing blank) -> (N, 2)."""
    end = 2 * target_lengths
    last_label = lattice_last.gather(1, (end - 1).clamp(min=0)[:, None])[:, 0]
    last_label = torch.where(target_lengths > 0, last_label, torch.full_like(last_label, _NEG_INF))
    return torch.stack([lattice_last.gather(1, end[:, None])[:, 0], last_label], dim=1)


def _log_alpha(lpe: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Forward variables in log space, (T, N, 2S'+1)."""
    alpha = torch.full_like(lpe, _NEG_INF)
    alpha[0, :, :2] = lpe[0, :, :2]
    for t in range(1, lpe.shape[0]):
        prev = alpha[t - 1]
        from_skip = _shift_right(prev, 2, _NEG_INF).masked_fill(~skip, _NEG_INF)
        alpha[t] = _logsumexp3(prev, _shift_right(prev, 1, _NEG_INF), from_skip) + lpe[t]
    return alpha


def _log_likelihood(alpha: torch.Tensor, input_lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    n = alpha.shape[1]
    last = alpha[(input_lengths - 1).clamp(min=0), torch.arange(n, device=alpha.device)]
    ll = torch.logsumexp(_final_states(last, target_lengths), dim=1)
    # an empty input emits only the empty target
    empty = torch.where(target_lengths == 0, torch.zeros_like(ll), torch.full_like(ll, _NEG_INF))
    return torch.where(input_lengths == 0, empty, ll)


def _log_beta(lpe: torch.Tensor, skip: torch.Tensor, input_lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Backward variables in log space excluding frame t's emission, (T, N, 2S'+1)."""
    n_frames, n, size = lpe.shape
    states = torch.arange(size, device=lpe.device)
    end = 2 * target_lengths[:, None]
    accepting = (states == end) | ((states == end - 1) & (target_lengths[:, None] > 0))
    start = torch.where(accepting, 0.0, _NEG_INF).to(lpe.dtype)
    skip_next = _shift_left(skip, 2, False)
    beta = torch.full_like(lpe, _NEG_INF)
    for t in range(n_frames - 1, -1, -1):
        if t < n_frames - 1:
            q = beta[t + 1] + lpe[t + 1]
            rec = _logsumexp3(q, _shift_left(q, 1, _NEG_INF), _shift_left(q, 2, _NEG_INF).masked_fill(~skip_next, _NEG_INF))
        else:
            rec = torch.full_like(start, _NEG_INF)
        last = (input_lengths - 1 == t)[:, None]
        inside = (t < input_lengths - 1)[:, None]
        beta[t] = torch.where(last, start, torch.where(inside, rec, torch.full_like(rec, _NEG_INF)))
    return beta


def forward_backward(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample negative log-likelihood ``(N,)`` and, if ``want_grad``, the
    built-in's gradient ``exp(log_probs) - gamma`` ``(T, N, C)``: zero for frames
    t >= input_length, NaN for frames of samples whose loss is infinite."""
    n_frames, n, n_classes = log_probs.shape
    ext, skip = extended_targets(targets, target_lengths, blank)
    if n_frames == 0 or n == 0:
        nll = torch.where(target_lengths == 0, 0.0, float("inf")).to(log_probs.dtype)
        return nll, (torch.zeros_like(log_probs) if want_grad else None)
    lpe = log_probs.gather(2, ext[None].expand(n_frames, -1, -1))
    alpha = _log_alpha(lpe, skip)
    ll = _log_likelihood(alpha, input_lengths, target_lengths)
    if not want_grad:
        return -ll, None
    beta = _log_beta(lpe, skip, input_lengths, target_lengths)
    frames = torch.arange(n_frames, device=log_probs.device)[:, None]
    active = frames < input_lengths[None, :]  # (T, N)
    log_occ = (alpha + beta - ll[None, :, None]).masked_fill(~active[:, :, None], _NEG_INF)
    occ = torch.zeros_like(log_probs).scatter_add_(2, ext[None].expand(n_frames, -1, -1), torch.exp(log_occ))
    grad = torch.where(active[:, :, None], torch.exp(log_probs) - occ, torch.zeros_like(log_probs))
    infeasible = torch.isinf(ll)[None, :, None] & active[:, :, None]
    return -ll, grad.masked_fill(infeasible, float("nan"))


def viterbi(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best single alignment: labels ``(N, T)`` (-1 for t >= input_length and for
    infeasible samples) and its log-score ``(N,)`` (-inf when infeasible)."""
    n_frames, n, _ = log_probs.shape
    device = log_probs.device
    ext, skip = extended_targets(targets, target_lengths, blank)
    path = torch.full((n, n_frames), -1, dtype=torch.long, device=device)
    if n_frames == 0 or n == 0:
        score = torch.where(target_lengths == 0, 0.0, _NEG_INF).to(log_probs.dtype)
        return path, score
    lpe = log_probs.gather(2, ext[None].expand(n_frames, -1, -1))
    delta = torch.full_like(lpe, _NEG_INF)
    back = torch.zeros(lpe.shape, dtype=torch.uint8, device=device)  # 0 stay, 1 from s-1, 2 from s-2
    delta[0, :, :2] = lpe[0, :, :2]
    for t in range(1, n_frames):
        prev = delta[t - 1]
        cand = torch.stack([prev, _shift_right(prev, 1, _NEG_INF), _shift_right(prev, 2, _NEG_INF).masked_fill(~skip, _NEG_INF)])
        best, arg = cand.max(dim=0)
        delta[t] = best + lpe[t]
        back[t] = arg.to(torch.uint8)
    rows = torch.arange(n, device=device)
    last = delta[(input_lengths - 1).clamp(min=0), rows]
    finals = _final_states(last, target_lengths)
    score, which = finals.max(dim=1)
    empty = torch.where(target_lengths == 0, torch.zeros_like(score), torch.full_like(score, _NEG_INF))
    score = torch.where(input_lengths == 0, empty, score)
    state = (2 * target_lengths - which).clamp(min=0)  # which=1 picks the last label state 2L-1
    feasible = torch.isfinite(score)
    for t in range(n_frames - 1, -1, -1):
        on = feasible & (t < input_lengths)
        path[:, t] = torch.where(on, ext.gather(1, state[:, None])[:, 0], path[:, t])
        step = back[t, rows, state].long()
        state = torch.where(on & (t > 0), state - step, state)
    return path, score
