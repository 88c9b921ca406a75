"""The ``triton`` backend (CUDA): kernels for the forward-backward pass (loss and gradient)
and the Viterbi alignment, and their drivers.

Why Triton (and not numba.cuda or a CUDA extension):
* PyTorch's CUDA wheels for Linux already depend on ``triton`` (``torch.compile`` needs
  it), so a GPU machine that has torch has the kernel language: nothing more to
  install, no compiler or CUDA toolkit at install time (a CUDA extension would need
  nvcc and a build per torch/CUDA version), and the kernel is compiled for the GPU at
  hand on first use and cached.
* It takes torch tensors and runs on torch's current CUDA stream; numba.cuda needs
  its own NVVM/libdevice from a CUDA toolkit (not part of torch's wheels), stream
  hand-over, and its built-in target is deprecated in favour of a separate package.
* The same kernel source runs on the CPU in Triton's interpreter (numpy underneath),
  so the GPU code is tested in CI without a GPU: ``backend='triton'`` with CPU tensors
  interprets it (slow; small shapes only). ``TRITON_INTERPRET=1`` is not needed.

Design: one program per sample; the program loops over the frames inside the kernel,
so a pass is one launch (not one per frame, as the vectorised torch path needs). The
2S+1 lattice states of the sample are one block of lanes. A state needs its two left
neighbours from the previous frame (right neighbours going backwards); lanes cannot
read each other's registers, so each frame's row goes through global memory (L1/L2)
with a block barrier between writing and reading it: alpha rows are stored anyway (the
gradient needs them), beta rows through a two-row scratch buffer per sample.

Arithmetic is in log space in the input's dtype (float32 or float64; callers upcast
half precision). Each alpha and beta row is shifted by its maximum, so the stored
values stay near 0 whatever T is: in float32 this avoids the drift of an unnormalised
log-space recursion (where alpha reaches -T*log C and the gradient is the exp of a
difference of such numbers). The loss sums the shifts in float64. The occupation
gamma_t(s) = alpha_t(s) beta_t(s) / P is renormalised per frame (the sum over states of
alpha*beta is P at every frame), which cancels both recursions' shifts. The gradient,
``exp(log_probs) - gamma`` as in the built-in, is written by subtracting each frame's
occupations from ``exp(log_probs)``, filled by the caller: the blank's as one sum, the
labels' with atomic adds (a label may occur several times in a target; float addition
order, and so the last bits, may vary between runs for repeated labels).

Conventions of the kernels (their driver, :func:`forward_backward`, handles the rest): -inf/+inf loss when no
alignment fits is returned as ``log_lik = -inf``; an empty input gives log-likelihood 0
for an empty target, -inf otherwise; gradient rows of infeasible samples are left for
the caller to set to NaN, rows t >= input length are never touched (the caller zeroes
them).

Shapes: T frames, N batch, C classes, S padded target length, W = 2 S + 1 states.
"""

from __future__ import annotations

import torch

try:  # triton is optional: on CUDA without it the vectorised torch path runs
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

AVAILABLE = triton is not None
_NEG_INF = float("-inf")
if AVAILABLE:
    # tl.max(x, 0) and tl.sum(x, 0) are these reductions (for floats); named directly,
    # the kernels also run in an interpreter made after triton was imported without
    # TRITON_INTERPRET (tl.max itself is then a compiled-only function).
    _MAX = tl.standard._elementwise_max
    _SUM = tl.standard._sum_combine
    NEG_INF = tl.constexpr(_NEG_INF)  # kernels read globals only as constexpr


def _ctc_forward_backward_kernel(
    lp_ptr, tgt_ptr, il_ptr, tl_ptr, alpha_ptr, scratch_ptr, ll_ptr, grad_ptr,
    stride_lp_t, stride_lp_n, stride_tgt_n, stride_al_n, stride_al_t, stride_g_t, stride_g_n,
    blank, BLOCK: tl.constexpr, WANT_GRAD: tl.constexpr,
):
    """Program b: log-likelihood of sample b into ll[b] (float64); with WANT_GRAD, the
    occupations subtracted from grad[t, b, :] for t < input_lengths[b].

    lp (T, N, C) with unit class stride; tgt (N, S') int64; il, tl (N,) int64;
    alpha (N, T, W) scratch in lp's dtype; scratch (N, 2, BLOCK) in lp's dtype;
    grad (T, N, C) in lp's dtype, prefilled with exp(lp).
    """
    b = tl.program_id(0).to(tl.int64)
    n_frames = tl.load(il_ptr + b)
    length = tl.load(tl_ptr + b)
    size = 2 * length + 1  # states of the blank-interleaved target l'
    s = tl.arange(0, BLOCK)
    live = s < size  # lanes that hold a state of this sample
    odd = (s % 2) == 1  # label states; even states are blanks
    tgt_row = tgt_ptr + b * stride_tgt_n
    # lab: class of state s; lab_prev: class of state s-2 (label states only, -1 elsewhere)
    lab = tl.where(odd, tl.load(tgt_row + (s - 1) // 2, mask=live & odd, other=0), blank)
    lab_prev = tl.load(tgt_row + (s - 3) // 2, mask=live & odd & (s >= 3), other=-1)
    skip = live & odd & (s >= 3) & (lab != lab_prev)  # state s may be entered from s-2
    lp_row = lp_ptr + b * stride_lp_n
    alpha_row = alpha_ptr + b * stride_al_n

    # ---- alpha: frame 0 enters states 0 (blank) and 1 (first label) ----
    # (an empty input reads frame 0 harmlessly: its log-likelihood is set at the end)
    a = tl.load(lp_row + lab, mask=live & (s < 2), other=NEG_INF)
    m = tl.reduce(a, 0, _MAX)
    shift = tl.where(m == NEG_INF, 0.0, m)  # an all -inf row stays -inf, never NaN
    a = a - shift
    log_scale = m.to(tl.float64)  # sum of the row shifts: log alpha = stored + log_scale
    tl.store(alpha_row + s, a, mask=live)
    for t in range(1, n_frames):
        tl.debug_barrier()  # row t-1 written by every lane before any lane reads it
        prev = alpha_row + (t - 1) * stride_al_t
        from1 = tl.load(prev + s - 1, mask=live & (s >= 1), other=NEG_INF)
        from2 = tl.load(prev + s - 2, mask=skip, other=NEG_INF)
        emit = tl.load(lp_row + t * stride_lp_t + lab, mask=live, other=NEG_INF)
        m3 = tl.maximum(tl.maximum(a, from1), from2)
        m3 = tl.where(m3 == NEG_INF, 0.0, m3)
        a = m3 + tl.log(tl.exp(a - m3) + tl.exp(from1 - m3) + tl.exp(from2 - m3)) + emit
        m = tl.reduce(a, 0, _MAX)
        shift = tl.where(m == NEG_INF, 0.0, m)
        a = a - shift
        log_scale += m.to(tl.float64)
        tl.store(prev + stride_al_t + s, a, mask=live)
    # accepting states at the last frame: the trailing blank (W-1) and the last label (W-2;
    # -1 for an empty target, which no lane holds)
    end_blank = tl.reduce(tl.where(s == size - 1, a, NEG_INF), 0, _MAX).to(tl.float64)
    end_label = tl.reduce(tl.where(s == size - 2, a, NEG_INF), 0, _MAX).to(tl.float64)
    m2 = tl.maximum(end_blank, end_label)
    m2 = tl.where(m2 == NEG_INF, 0.0, m2)
    log_lik = log_scale + m2 + tl.log(tl.exp(end_blank - m2) + tl.exp(end_label - m2))
    empty_input = tl.where(length == 0, 0.0, NEG_INF).to(tl.float64)  # only "" fits 0 frames
    log_lik = tl.where(n_frames == 0, empty_input, log_lik)
    tl.store(ll_ptr + b, log_lik)

    if WANT_GRAD:
        # ---- beta (excluding frame t's emission) and the gradient, frames T_b-1 .. 0 ----
        feasible = log_lik > NEG_INF
        n_steps = tl.where(feasible, n_frames, 0)
        lab_next = tl.load(tgt_row + (s + 1) // 2, mask=live & odd & (s + 2 < size), other=-1)
        skip_next = live & odd & (s + 2 < size) & (lab_next != lab)  # s+2 may be entered from s
        accepting = live & ((s == size - 1) | (s == size - 2))
        bt = tl.where(accepting, 0.0, NEG_INF).to(a.dtype)
        scratch_row = scratch_ptr + b * 2 * BLOCK
        tl.debug_barrier()  # the last alpha row is read back below, whichever lane wrote it
        for i in range(0, n_steps):
            t = n_frames - 1 - i
            if i > 0:
                # q(s) = beta_{t+1}(s) + emission at t+1; beta_t(s) = lse(q(s), q(s+1), q(s+2) if skip)
                q = bt + tl.load(lp_row + (t + 1) * stride_lp_t + lab, mask=live, other=NEG_INF)
                buf = scratch_row + (i % 2) * BLOCK  # two rows: the write of step i+2 waits
                tl.store(buf + s, q)  # behind step i+1's barrier
                tl.debug_barrier()
                q1 = tl.load(buf + s + 1, mask=live & (s + 1 < size), other=NEG_INF)
                q2 = tl.load(buf + s + 2, mask=skip_next, other=NEG_INF)
                m3 = tl.maximum(tl.maximum(q, q1), q2)
                m3 = tl.where(m3 == NEG_INF, 0.0, m3)
                bt = m3 + tl.log(tl.exp(q - m3) + tl.exp(q1 - m3) + tl.exp(q2 - m3))
                bt = tl.where(live, bt, NEG_INF)
                m = tl.reduce(bt, 0, _MAX)
                bt = bt - tl.where(m == NEG_INF, 0.0, m)
            # occupation of each state at t, normalised over the frame
            g = tl.load(alpha_row + t * stride_al_t + s, mask=live, other=NEG_INF) + bt
            m = tl.reduce(g, 0, _MAX)
            m = tl.where(m == NEG_INF, 0.0, m)
            occ = tl.exp(g - m)
            occ = occ / tl.maximum(tl.reduce(occ, 0, _SUM), 1e-30)
            grad_row = grad_ptr + t * stride_g_t + b * stride_g_n
            blank_occ = tl.reduce(tl.where(odd, 0.0, occ), 0, _SUM)
            tl.store(grad_row + blank, tl.load(grad_row + blank) - blank_occ)
            tl.atomic_add(grad_row + lab, -occ, mask=live & odd, sem="relaxed")


def _ctc_viterbi_kernel(
    lp_ptr, tgt_ptr, il_ptr, tl_ptr, scratch_ptr, back_ptr, path_ptr, score_ptr,
    stride_lp_t, stride_lp_n, stride_tgt_n, stride_bk_n, stride_bk_t, stride_path_n,
    blank, BLOCK: tl.constexpr,
):
    """Program b: best alignment of sample b (max-product), the same arithmetic and
    tie-breaking as ``ctc.torch.viterbi`` (stay before s-1 before s-2; the
    trailing blank before the last label).

    scratch (N, 2, BLOCK) in lp's dtype; back (N, T, W) int8 backpointers (0 stay,
    1 from s-1, 2 from s-2); path (N, T) int64 prefilled with -1; score (N,) lp's dtype.
    """
    b = tl.program_id(0).to(tl.int64)
    n_frames = tl.load(il_ptr + b)
    length = tl.load(tl_ptr + b)
    size = 2 * length + 1
    s = tl.arange(0, BLOCK)
    live = s < size
    odd = (s % 2) == 1
    tgt_row = tgt_ptr + b * stride_tgt_n
    lab = tl.where(odd, tl.load(tgt_row + (s - 1) // 2, mask=live & odd, other=0), blank)
    lab_prev = tl.load(tgt_row + (s - 3) // 2, mask=live & odd & (s >= 3), other=-1)
    skip = live & odd & (s >= 3) & (lab != lab_prev)
    lp_row = lp_ptr + b * stride_lp_n
    back_row = back_ptr + b * stride_bk_n
    scratch_row = scratch_ptr + b * 2 * BLOCK

    d = tl.load(lp_row + lab, mask=live & (s < 2), other=NEG_INF)
    tl.store(scratch_row + s, d)
    for t in range(1, n_frames):
        tl.debug_barrier()
        prev = scratch_row + ((t - 1) % 2) * BLOCK
        from1 = tl.load(prev + s - 1, mask=live & (s >= 1), other=NEG_INF)
        from2 = tl.load(prev + s - 2, mask=skip, other=NEG_INF)
        arg = tl.where(from1 > d, 1, 0)
        best = tl.maximum(d, from1)
        arg = tl.where(from2 > best, 2, arg)
        best = tl.maximum(best, from2)
        d = best + tl.load(lp_row + t * stride_lp_t + lab, mask=live, other=NEG_INF)
        d = tl.where(live, d, NEG_INF)
        tl.store(back_row + t * stride_bk_t + s, arg.to(tl.int8), mask=live)
        tl.store(scratch_row + (t % 2) * BLOCK + s, d)
    end_blank = tl.reduce(tl.where(s == size - 1, d, NEG_INF), 0, _MAX)
    end_label = tl.reduce(tl.where(s == size - 2, d, NEG_INF), 0, _MAX)
    which = tl.where(end_label > end_blank, 1, 0)
    score = tl.maximum(end_blank, end_label)
    empty_input = tl.where(length == 0, 0.0, NEG_INF).to(score.dtype)
    score = tl.where(n_frames == 0, empty_input, score)
    tl.store(score_ptr + b, score)
    tl.debug_barrier()  # every lane's backpointers written before the scalar walk
    feasible = score > NEG_INF
    state = 2 * length - which
    n_walk = tl.where(feasible, n_frames, 0)
    for i in range(0, n_walk):
        t = n_frames - 1 - i
        is_label = (state % 2) == 1
        label = tl.load(tgt_row + (state - 1) // 2, mask=is_label, other=0)
        tl.store(path_ptr + b * stride_path_n + t, tl.where(is_label, label, blank))
        step = tl.load(back_row + t * stride_bk_t + state, mask=t > 0, other=0)
        state = state - step.to(state.dtype)


_KERNELS = {"forward_backward": _ctc_forward_backward_kernel, "viterbi": _ctc_viterbi_kernel}
_CACHE: dict = {}


def _kernel(name: str, device: torch.device):
    """The kernel compiled for CUDA tensors (once per process, then cached on disk by
    Triton), or run by Triton's interpreter for CPU tensors."""
    if not AVAILABLE:
        raise RuntimeError("backend 'triton' needs the triton package (pip install triton).")
    key = (name, device.type == "cpu")
    if key not in _CACHE:
        if device.type == "cpu":
            from triton.runtime.interpreter import InterpretedFunction

            _CACHE[key] = InterpretedFunction(_KERNELS[name])
        else:
            _CACHE[key] = triton.jit(_KERNELS[name])
    return _CACHE[key]


def _block(width: int) -> tuple[int, int]:
    """Lanes (a power of two >= the W states) and warps per program."""
    block = max(32, triton.next_power_of_2(width))
    return block, max(1, min(8, block // 128))


def _targets_2d(targets: torch.Tensor) -> torch.Tensor:
    """A (N, S') int64 contiguous view with at least one column (loads are masked)."""
    if targets.shape[1] == 0:
        return torch.zeros((targets.shape[0], 1), dtype=torch.long, device=targets.device)
    return targets.to(torch.long).contiguous()


def _kernel_inputs(log_probs, targets, input_lengths, target_lengths):
    """Contiguous kernel arguments: log-probs, targets ``(N, S)``, lengths as int64 on the
    log-probs' device, the extended-label width ``2S + 1`` and its block size and warps."""
    device = log_probs.device
    width = 2 * int(targets.shape[1]) + 1
    block, warps = _block(width)
    return (log_probs.contiguous(), _targets_2d(targets),
            input_lengths.to(device=device, dtype=torch.long).contiguous(),
            target_lengths.to(device=device, dtype=torch.long).contiguous(), width, block, warps)


def forward_backward(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample negative log-likelihood ``(N,)`` and, if ``want_grad``, the built-in's
    gradient ``exp(log_probs) - gamma`` ``(T, N, C)``: zero for frames t >= input_length,
    NaN for frames of samples whose loss is infinite.

    ``log_probs (T, N, C)`` float32/float64 (computed in that dtype), ``targets (N, S)``
    int64 padded, lengths ``(N,)`` int64, all on one device (CUDA, or CPU for the
    interpreter).
    """
    n_frames, n, n_classes = log_probs.shape
    device = log_probs.device
    if n_frames == 0 or n == 0:
        nll = torch.where(target_lengths == 0, 0.0, float("inf")).to(log_probs.dtype)
        return nll, (torch.zeros_like(log_probs) if want_grad else None)
    lp, tgt, il, tgl, width, block, warps = _kernel_inputs(log_probs, targets, input_lengths, target_lengths)
    alpha = torch.empty((n, n_frames, width), dtype=lp.dtype, device=device)
    scratch = torch.empty((n, 2, block), dtype=lp.dtype, device=device) if want_grad else alpha
    log_lik = torch.empty(n, dtype=torch.float64, device=device)
    active = torch.arange(n_frames, device=device)[:, None] < il[None, :]  # (T, N)
    if want_grad:
        grad = torch.exp(lp).masked_fill_(~active[:, :, None], 0.0)
    else:
        grad = log_lik  # never written
    _kernel("forward_backward", device)[(n,)](
        lp, tgt, il, tgl, alpha, scratch, log_lik, grad,
        lp.stride(0), lp.stride(1), tgt.stride(0), alpha.stride(0), alpha.stride(1),
        grad.stride(0) if want_grad else 0, grad.stride(1) if want_grad else 0,
        int(blank), BLOCK=block, WANT_GRAD=bool(want_grad), num_warps=warps,
    )
    nll = (-log_lik).to(lp.dtype)
    if not want_grad:
        return nll, None
    infeasible = torch.isinf(nll)[None, :, None] & active[:, :, None]
    return nll, grad.masked_fill_(infeasible, float("nan"))


def viterbi(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best single alignment, as ``ctc.torch.viterbi``: labels ``(N, T)``
    (-1 for t >= input_length and for infeasible samples) and its log-score ``(N,)``
    (-inf when infeasible)."""
    n_frames, n, _ = log_probs.shape
    device = log_probs.device
    path = torch.full((n, n_frames), -1, dtype=torch.long, device=device)
    if n_frames == 0 or n == 0:
        score = torch.where(target_lengths == 0, 0.0, _NEG_INF).to(log_probs.dtype)
        return path, score
    lp, tgt, il, tgl, width, block, warps = _kernel_inputs(log_probs, targets, input_lengths, target_lengths)
    scratch = torch.empty((n, 2, block), dtype=lp.dtype, device=device)
    back = torch.zeros((n, n_frames, width), dtype=torch.int8, device=device)
    score = torch.empty(n, dtype=lp.dtype, device=device)
    _kernel("viterbi", device)[(n,)](
        lp, tgt, il, tgl, scratch, back, path, score,
        lp.stride(0), lp.stride(1), tgt.stride(0), back.stride(0), back.stride(1), path.stride(0),
        int(blank), BLOCK=block, num_warps=warps,
    )
    return path, score
