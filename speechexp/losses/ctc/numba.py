"""The ``numba`` backend (CPU): a numba kernel for the forward-backward pass in the
scaled probability domain, and its driver, which spreads a batch over threads.

Why the probability domain: a log-space recursion costs two or three ``exp`` and
one ``log`` per lattice cell, which is what PyTorch's CPU kernel pays three times
(alpha, beta, gradient). Here each frame's emissions are exponentiated once,
shifted by the frame's maximum log-probability, and the lattice rows are
renormalised every frame, so a cell costs a few multiply-adds (Rabiner scaling).
All arithmetic is float64 whatever the input dtype, and fastmath is off.

Only the classes that occur in the blank-interleaved target (K <= min(C, L+1))
are exponentiated; ``exp(log_probs)`` for the gradient is left to torch, which
vectorises it, and the kernel subtracts the occupations in place.

Scaling can only lose mass through underflow. Every cell flushed to zero while
its exact value is positive is counted, with an a-priori bound on what it could
contribute to the likelihood (its value times the largest possible continuation,
the product of the later frames' total mass). When that bound exceeds 1e-12 of
the likelihood (it is loose: long, uncertain inputs exceed it), the likelihood is
recomputed from the backward variables, which flush different cells, and the
sample is accepted only if both agree to 1e-10 in log. Otherwise it is reported
(status 1) and the driver recomputes it in float64 log space (the ``torch`` backend).
Ordinary network outputs never need the fallback.

Shapes (T frames, N batch, C classes, S padded target length):
``log_probs (T, N, C)``, ``targets (N, S)`` int64, ``input_lengths (N,)`` and
``target_lengths (N,)`` int64, ``loss (N,)`` float64, ``grad (T, N, C)`` in the
dtype of ``log_probs``, ``status (N,)`` int8.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np
import torch

from speechexp.losses.ctc import torch as ctc_torch

# Cells below TINY (relative to the row scale) are flushed, well above the float64
# denormal range (2.2e-308) so no denormal ever slows the loop or loses precision.
_TINY = 1e-280
_LOG_TINY = math.log(_TINY)
# A sample is recomputed in log space when the flushed mass could exceed this
# fraction of its likelihood.
_LOG_REL_BOUND = math.log(1e-12)
# Alpha and beta likelihoods must agree this closely (in log) when the a-priori
# bound cannot vouch for a sample; float64 rounding over 1000s of frames stays
# orders of magnitude below.
_LOG_AGREE = 1e-10
_NEG_INF = -np.inf

STATUS_OK = 0
STATUS_FALLBACK = 1


@nb.njit(cache=True, nogil=True)
def _logaddexp(a, b):
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@nb.njit(cache=True, nogil=True)
def _extended_labels(targets, b, length, blank):
    """Blank-interleaved label sequence l' (2L+1,) and where the s-2 skip is allowed."""
    size = 2 * length + 1
    ext = np.full(size, blank, np.int64)
    skip = np.zeros(size, np.bool_)
    for i in range(length):
        ext[2 * i + 1] = targets[b, i]
    for s in range(3, size, 2):
        skip[s] = ext[s] != ext[s - 2]
    return ext, skip


@nb.njit(cache=True, nogil=True)
def _min_frames(ext, length):
    """Frames needed to emit the target: one per label plus a blank between repeats."""
    need = length
    for s in range(3, ext.shape[0], 2):
        if ext[s] == ext[s - 2]:
            need += 1
    return need


@nb.njit(cache=True, nogil=True)
def _window(t, n_frames, size):
    """States that are reachable at frame t and can still finish by the last frame."""
    lo = max(0, size - 2 * (n_frames - t))
    hi = min(size, 2 * t + 2)
    return lo, hi


@nb.njit(cache=True, nogil=True)
def _compact_classes(ext, n_classes):
    """The K distinct classes of l' (blank included) and each state's index among them.

    Only these classes can be emitted, so only their exps are ever needed."""
    where = np.full(n_classes, -1, np.int64)  # class -> its compact index k, -1 if unused
    used = np.empty(ext.shape[0], np.int64)  # compact index k -> class (first K entries)
    cid = np.empty(ext.shape[0], np.int64)  # "compact id": state s -> k of its class ext[s]
    k = 0
    for s in range(ext.shape[0]):
        c = ext[s]
        if where[c] < 0:
            where[c] = k
            used[k] = c
            k += 1
        cid[s] = where[c]
    return used[:k], cid


@nb.njit(cache=True, nogil=True)
def _emissions(lp, b, n_frames, used, ep, shift, cum_lse):
    """ep ("emission probabilities", (T_b, K)): ep[t, k] = exp(lp[t, b, used[k]] - shift[t]),
    shift[t] = max_k of those lp, so each frame's largest emission is 1.

    cum_lse[t] = sum over the first t frames of log(sum_k exp(lp[t, b, used[k]])):
    any path's emissions are bounded by it, which the flush bounds rely on.
    Returns False when a frame gives every usable class -inf (likelihood exactly 0).
    """
    cum_lse[0] = 0.0
    for t in range(n_frames):
        m = _NEG_INF
        for k in range(used.shape[0]):
            v = lp[t, b, used[k]]
            if v > m:
                m = v
        if m == _NEG_INF:
            return False
        total = 0.0
        for k in range(used.shape[0]):
            e = math.exp(lp[t, b, used[k]] - m)
            ep[t, k] = e
            total += e
        shift[t] = m
        cum_lse[t + 1] = cum_lse[t] + m + math.log(total)
    return True


@nb.njit(cache=True, nogil=True)
def _alpha_pass(lp, b, n_frames, ext, cid, skip, ep, shift, cum_lse, alpha):
    """Fill alpha (T_b, 2L+1) with per-frame max-normalised forward variables.

    Returns (log-likelihood, log upper bound of the mass lost to flushing).
    """
    size = ext.shape[0]
    log_scale = 0.0
    err = _NEG_INF
    for t in range(n_frames):
        lo, hi = _window(t, n_frames, size)
        row = alpha[t]
        drops = 0
        mx = 0.0
        for s in range(lo, hi):
            if t == 0:
                acc = 1.0  # virtual start state feeding s = 0 and s = 1
            else:
                prev = alpha[t - 1]
                acc = prev[s]
                if s >= 1:
                    acc += prev[s - 1]
                if skip[s]:
                    acc += prev[s - 2]
            v = acc * ep[t, cid[s]]
            if v < _TINY:
                if acc > 0.0 and lp[t, b, ext[s]] > _NEG_INF:
                    drops += 1  # exact value positive: account for it
                v = 0.0
            row[s] = v
            if v > mx:
                mx = v
        if drops > 0:
            # each flushed cell held < TINY * exp(log_scale + shift[t]) and any
            # continuation multiplies it by at most exp(sum of later frames' lse)
            later = cum_lse[n_frames] - cum_lse[t + 1]
            err = _logaddexp(err, math.log(drops) + _LOG_TINY + log_scale + shift[t] + later)
        if mx == 0.0:
            return _NEG_INF, err
        inv = 1.0 / mx
        for s in range(lo, hi):
            row[s] *= inv
        log_scale += shift[t] + math.log(mx)
    last = alpha[n_frames - 1]
    final = last[size - 1]
    if size >= 2:
        final += last[size - 2]
    return log_scale + math.log(final), err


@nb.njit(cache=True, nogil=True)
def _beta_grad_pass(lp, b, n_frames, ext, cid, skip, ep, shift, cum_lse, alpha, want_grad, grad):
    """Backward variables frame by frame, turned at once into the gradient rows.

    grad[t, b, c] = exp(lp[t, b, c]) - gamma_t(c), with gamma the posterior state
    occupation; the alpha*beta products are renormalised per frame, which cancels
    both recursions' scales. Returns (log-likelihood recomputed from beta, log bound
    of the mass lost to flushing); the bound is +inf when a frame's occupation
    vanished entirely.
    """
    size = ext.shape[0]
    n_classes = lp.shape[2]
    cur = np.zeros(size)  # beta_t (scaled), the row being computed
    nxt = np.zeros(size)  # beta_{t+1} (scaled), the row computed last
    q = np.zeros(size + 2)  # q[s] = beta_{t+1}(s) * emission of state s at t+1 (the part of
    #                         nxt that feeds cur); two spare slots for the s+1, s+2 reads
    occ = np.zeros(n_classes)  # occupation of each class at frame t (gradient row scratch)
    log_scale = 0.0
    err = _NEG_INF
    cur[size - 1] = 1.0
    if size >= 2:
        cur[size - 2] = 1.0
    for t in range(n_frames - 1, -1, -1):
        lo, hi = _window(t, n_frames, size)
        if t < n_frames - 1:
            cur, nxt = nxt, cur
            # q[s] = beta_{t+1}(s) * emission at t+1; cur(s) sums s, s+1 and the skip
            lo1, hi1 = _window(t + 1, n_frames, size)  # lo1/hi1: frame t+1's window of states
            for s in range(lo1, hi1):
                q[s] = nxt[s] * ep[t + 1, cid[s]]
            drops = 0
            mx = 0.0
            for s in range(lo, hi):
                v = 0.0
                if s >= lo1 and s < hi1:
                    v += q[s]
                if s + 1 >= lo1 and s + 1 < hi1:
                    v += q[s + 1]
                if s + 2 < size and skip[s + 2] and s + 2 >= lo1 and s + 2 < hi1:
                    v += q[s + 2]
                if v < _TINY:
                    if _beta_exact_positive(lp, b, t, s, ext, skip, nxt, lo1, hi1):
                        drops += 1
                    v = 0.0
                cur[s] = v
                if v > mx:
                    mx = v
            for s in range(hi, min(size, hi + 4)):
                cur[s] = 0.0  # stale values of frame t+2 beyond this window
            if drops > 0:
                # a flushed beta is multiplied by alpha_t <= exp(sum of lse up to t)
                err = _logaddexp(err, math.log(drops) + _LOG_TINY + log_scale + shift[t + 1] + cum_lse[t + 1])
            if mx == 0.0:
                return _NEG_INF, np.inf
            inv = 1.0 / mx
            for s in range(lo, hi):
                cur[s] *= inv
            log_scale += shift[t + 1] + math.log(mx)
        if want_grad and not _write_grad_row(b, t, ext, alpha[t], cur, lo, hi, occ, grad):
            return _NEG_INF, np.inf
    # P = sum over the two start states of emission(0) * beta_0
    lo, hi = _window(0, n_frames, size)
    start = 0.0
    for s in range(lo, min(hi, 2)):
        start += ep[0, cid[s]] * cur[s]
    if start == 0.0:
        return _NEG_INF, np.inf
    return log_scale + shift[0] + math.log(start), err


@nb.njit(cache=True, nogil=True)
def _beta_exact_positive(lp, b, t, s, ext, skip, nxt, lo1, hi1):
    """Whether beta_t(s) is positive in exact arithmetic (a flushed cell, not a true zero)."""
    size = ext.shape[0]
    for k in range(3):
        r = s + k
        if r >= size or r < lo1 or r >= hi1:
            continue
        if k == 2 and not skip[r]:
            continue
        if nxt[r] > 0.0 and lp[t + 1, b, ext[r]] > _NEG_INF:
            return True
    return False


@nb.njit(cache=True, nogil=True)
def _write_grad_row(b, t, ext, alpha_row, beta_row, lo, hi, occ, grad):
    """grad[t, b] -= occupation; the caller filled grad with exp(lp) (vectorised in torch)."""
    for s in range(lo, hi):
        occ[ext[s]] = 0.0
    total = 0.0
    for s in range(lo, hi):
        g = alpha_row[s] * beta_row[s]
        occ[ext[s]] += g
        total += g
    if total == 0.0:
        return False
    inv = 1.0 / total
    for s in range(lo, hi):
        c = ext[s]
        if occ[c] != 0.0:
            grad[t, b, c] -= occ[c] * inv
            occ[c] = 0.0  # subtract each class once
    return True


@nb.njit(cache=True, nogil=True)
def _one_sample(lp, targets, b, n_frames, length, blank, want_grad, loss, grad, status):
    """Loss (and gradient rows t < T_b) of sample b; rows t >= T_b are zeroed."""
    n_total, _, n_classes = lp.shape
    if want_grad:
        for t in range(n_frames, n_total):
            for c in range(n_classes):
                grad[t, b, c] = 0.0
    ext, skip = _extended_labels(targets, b, length, blank)
    if n_frames < _min_frames(ext, length) or n_frames == 0:
        # no alignment fits (an empty input only emits an empty target)
        loss[b] = 0.0 if length == 0 else np.inf
        if loss[b] == np.inf and want_grad:
            for t in range(n_frames):
                for c in range(n_classes):
                    grad[t, b, c] = np.nan  # the built-in's gradient for inf losses
        return
    used, cid = _compact_classes(ext, n_classes)
    ep = np.empty((n_frames, used.shape[0]))
    shift = np.empty(n_frames)
    cum_lse = np.empty(n_frames + 1)
    if not _emissions(lp, b, n_frames, used, ep, shift, cum_lse):
        status[b] = STATUS_FALLBACK  # a frame with only -inf: let log space decide
        return
    alpha = np.zeros((n_frames, ext.shape[0]))
    log_lik, err = _alpha_pass(lp, b, n_frames, ext, cid, skip, ep, shift, cum_lse, alpha)
    if log_lik == _NEG_INF:
        status[b] = STATUS_FALLBACK
        return
    loss[b] = -log_lik
    if not want_grad and err <= log_lik + _LOG_REL_BOUND:
        return
    log_lik_b, err_b = _beta_grad_pass(lp, b, n_frames, ext, cid, skip, ep, shift, cum_lse, alpha, want_grad, grad)
    if max(err, err_b) <= log_lik + _LOG_REL_BOUND:
        return  # nothing flushed could matter
    # The a-priori bound is loose (it assumes the best possible continuation).
    # Alpha and beta flush different cells, so their likelihoods only agree when
    # the flushed mass is negligible.
    if not abs(log_lik - log_lik_b) <= _LOG_AGREE:
        status[b] = STATUS_FALLBACK


@nb.njit(cache=True, nogil=True)
def forward_backward_kernel(lp, targets, input_lengths, target_lengths, blank, want_grad, order, loss, grad, status):
    """Per-sample CTC negative log-likelihood into ``loss (N,)`` and, when
    ``want_grad``, the built-in's gradient ``exp(lp) - gamma`` into ``grad (T, N, C)``,
    for the samples listed in ``order`` (int64, any subset of 0..N-1).

    Serial and GIL-free: callers run disjoint ``order`` subsets on Python threads.
    (numba's own ``prange`` would start a second OpenMP runtime next to torch's,
    and the two thread pools spin against each other on a small machine.)
    ``status[b]`` is set to 1 for samples that must be recomputed in log space
    (their loss and grad entries are then undefined).
    """
    for i in range(order.shape[0]):
        b = order[i]
        status[b] = STATUS_OK
        _one_sample(lp, targets, b, input_lengths[b], target_lengths[b], blank, want_grad, loss, grad, status)


# ---------------------------------------------------------------- the driver

_POOLS: dict[int, ThreadPoolExecutor] = {}


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ctc")
    return _POOLS[workers]


def _balanced_chunks(cost: np.ndarray, workers: int, threshold: bool = True) -> list[np.ndarray]:
    """Split sample indices into <= ``workers`` lists of similar lattice work ``cost (N,)``
    (longest first, each to the least loaded list)."""
    n = cost.shape[0]
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


def forward_backward(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    want_grad: bool,
    threading: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample negative log-likelihood ``(N,)`` and, if ``want_grad``, the built-in's
    gradient ``exp(log_probs) - gamma`` ``(T, N, C)``, as ``ctc_torch.forward_backward``;
    samples the kernel flags are redone there in float64 log space.

    ``log_probs (T, N, C)`` float32/float64 on the CPU, ``targets (N, S)`` int64 padded,
    lengths ``(N,)`` int64. ``threading``: ``'auto'`` splits the batch over
    ``torch.get_num_threads()`` Python threads when it holds enough lattice work (a small
    batch runs on the calling thread), ``'serial'`` always uses the calling thread,
    ``'pool'`` always splits. Measured inside multitask training steps by
    ``scripts/bench_ctc_step.py`` (issue 9): the CTC is about 1% of a step, no policy is
    measurably faster, and right after a parallel torch op (OpenMP workers still
    spinning) this loss slows down no more than the built-in does (both about
    1.1-1.2x), so ``'auto'`` is the default.
    """
    lp = log_probs.detach().contiguous()
    n_classes = lp.shape[2]
    n = lp.shape[1]
    loss = np.empty(n)
    status = np.zeros(n, dtype=np.int8)
    # exp(lp) vectorised by torch; the kernel subtracts the occupations in place
    grad = torch.exp(lp) if want_grad else torch.empty((1, 1, 1), dtype=lp.dtype)
    il, tl = input_lengths.numpy(), target_lengths.numpy()
    args = (lp.numpy(), np.ascontiguousarray(targets.numpy()), il, tl)
    workers = 1 if threading == "serial" else torch.get_num_threads()
    chunks = _balanced_chunks(il * (2 * tl + 1 + n_classes), workers, threshold=threading != "pool")

    def run(order: np.ndarray) -> None:
        forward_backward_kernel(*args, int(blank), want_grad, order, loss, grad.numpy(), status)

    if len(chunks) == 1:
        run(chunks[0])
    else:  # the kernel releases the GIL; same thread count as torch's own CTC
        list(_thread_pool(len(chunks)).map(run, chunks))
    loss_t = torch.from_numpy(loss)
    redo = torch.from_numpy(np.flatnonzero(status))
    if redo.numel() > 0:
        sub_loss, sub_grad = ctc_torch.forward_backward(
            lp[:, redo].double(), targets[redo], input_lengths[redo], target_lengths[redo], blank, want_grad
        )
        loss_t[redo] = sub_loss
        if want_grad:
            grad[:, redo] = sub_grad.to(grad.dtype)
    return loss_t.to(lp.dtype), (grad if want_grad else None)
