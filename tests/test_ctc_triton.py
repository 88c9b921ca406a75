"""The Triton CTC kernels (``speechexp.losses.ctc.triton``) without a GPU and with one.

On the CPU the kernels run in Triton's interpreter (``backend='triton'`` with CPU
tensors), on small shapes: values and gradients against the built-in and the numba
path, inf / zero_infinity, empty inputs and targets, repeats, infeasible alignments,
both target layouts, reductions, and the Viterbi alignment against the torch path.
The kernels are also compiled for a CUDA GPU (sm_90, to PTX and a cubin with the
ptxas that ships in the triton wheel), which checks what the interpreter cannot
(types of loop-carried values, globals, the real lowering). Tests marked ``gpu``
run the compiled kernels on CUDA and skip without one. All skip without triton.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from speechexp.losses.ctc import ctc_alignment, ctc_loss

triton = pytest.importorskip("triton", reason="the Triton kernels need the triton package (pip install triton)")
from speechexp.losses.ctc import triton as ctc_triton  # noqa: E402

TOL = {torch.float64: dict(rtol=1e-5, atol=1e-8), torch.float32: dict(rtol=1e-4, atol=1e-5)}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _quiet_interpreter():
    with warnings.catch_warnings():  # the interpreter's numpy logs of 0 (= -inf, as intended)
        warnings.filterwarnings("ignore", message="divide by zero", category=RuntimeWarning)
        yield


def make_case(seed, T, N, C, S, blank=0, il=None, tl=None):
    """Log-probs (T, N, C) float64, padded targets avoiding the blank, lengths."""
    gen = torch.Generator().manual_seed(seed)
    lp = torch.randn(T, N, C, generator=gen, dtype=torch.float64).log_softmax(-1)
    labels = torch.tensor([c for c in range(C) if c != blank])
    targets = labels[torch.randint(len(labels), (N, S), generator=gen)]
    il = torch.tensor(il) if il is not None else torch.randint(0, T + 1, (N,), generator=gen)
    tl = torch.tensor(tl) if tl is not None else torch.randint(0, S + 1, (N,), generator=gen)
    return lp, targets, il, tl


def builtin(lp, targets, il, tl, blank):
    """Per-sample built-in losses and their gradient w.r.t. log_probs (sum of losses)."""
    x = lp.clone().requires_grad_(True)
    loss = F.ctc_loss(x, targets, il, tl, blank=blank, reduction="none")
    loss.sum().backward()
    return loss.detach(), x.grad


def kernel(lp, targets, il, tl, blank, want_grad=True):
    return ctc_triton.forward_backward(lp, targets, il, tl, blank, want_grad)


# (seed, T, N, C, S, blank, input lengths, target lengths)
CASES = [
    # mixed: an empty input with an empty target (loss 0), an empty input with a
    # target (inf), a too-short input (inf), an empty target, full lengths
    (0, 12, 6, 5, 4, 0, [12, 0, 0, 3, 12, 9], [4, 0, 2, 4, 0, 3]),
    (1, 1, 3, 2, 1, 0, [1, 1, 0], [1, 0, 1]),  # one frame, two classes
    (2, 20, 3, 4, 8, 3, [20, 17, 20], [8, 8, 5]),  # few classes (many repeats), blank = C-1
    (3, 15, 2, 30, 0, 0, [15, 7], [0, 0]),  # empty targets only (S = 0)
    (4, 40, 2, 6, 12, 2, [40, 31], [12, 9]),  # blank in the middle, longer
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
def test_kernel_matches_builtin_and_numba(case, dtype):
    seed, T, N, C, S, blank, il, tl = case
    lp, targets, il, tl = make_case(seed, T, N, C, S, blank, il, tl)
    lp = lp.to(dtype)
    loss, grad = kernel(lp, targets, il, tl, blank)
    assert loss.dtype == grad.dtype == dtype and loss.shape == (N,) and grad.shape == lp.shape
    # the built-in on the same (rounded) inputs in float64: exact reference
    ref_loss, ref_grad = builtin(lp.double(), targets, il, tl, blank)
    torch.testing.assert_close(loss.double(), ref_loss, **TOL[dtype], equal_nan=True)
    torch.testing.assert_close(grad.double(), ref_grad, **TOL[dtype], equal_nan=True)
    if dtype == torch.float32:  # and the built-in's own float32 result, within its drift
        ref_loss, ref_grad = builtin(lp, targets, il, tl, blank)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-3, atol=1e-3, equal_nan=True)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-3, equal_nan=True)
    # the numba CPU path (same conventions: NaN rows for inf losses, zeros beyond lengths)
    x = lp.clone().requires_grad_(True)
    numba_loss = ctc_loss(x, targets, il, tl, blank=blank, reduction="none", backend="numba")
    numba_loss.sum().backward()
    torch.testing.assert_close(loss, numba_loss.detach(), **TOL[dtype], equal_nan=True)
    torch.testing.assert_close(grad, x.grad, **TOL[dtype], equal_nan=True)
    # frames beyond each input length: zero gradient
    for b in range(N):
        assert torch.all(grad[int(il[b]):, b] == 0)


def test_forward_only_equals_forward_backward():
    lp, targets, il, tl = make_case(5, 10, 3, 5, 4, 0, [10, 8, 2], [4, 3, 2])
    with_grad, _ = kernel(lp, targets, il, tl, 0, want_grad=True)
    alone, grad = kernel(lp, targets, il, tl, 0, want_grad=False)
    assert grad is None
    torch.testing.assert_close(alone, with_grad, rtol=0, atol=0)


def test_peaked_distribution_float32_stays_accurate():
    """Confident outputs (log-probs down to -100s): per-frame normalisation keeps float32 exact enough."""
    gen = torch.Generator().manual_seed(6)
    lp = (torch.randn(30, 2, 6, generator=gen, dtype=torch.float64) * 30).log_softmax(-1)
    targets = torch.randint(1, 6, (2, 8), generator=gen)
    il, tl = torch.tensor([30, 24]), torch.tensor([8, 6])
    loss, grad = kernel(lp.float(), targets, il, tl, 0)
    ref_loss, ref_grad = builtin(lp.float().double(), targets, il, tl, 0)
    torch.testing.assert_close(loss.double(), ref_loss, **TOL[torch.float32])
    torch.testing.assert_close(grad.double(), ref_grad, **TOL[torch.float32])


def test_repeats_at_minimum_length_and_one_below():
    # [1, 1, 2, 2, 2] needs 5 labels + 3 separating blanks = 8 frames
    lp = make_case(7, 9, 3, 4, 5)[0]
    targets = torch.tensor([[1, 1, 2, 2, 2]] * 3)
    il, tl = torch.tensor([8, 7, 9]), torch.tensor([5, 5, 5])
    loss, grad = kernel(lp, targets, il, tl, 0)
    assert torch.isfinite(loss[[0, 2]]).all() and loss[1] == float("inf")
    assert torch.isnan(grad[:7, 1]).all() and torch.all(grad[7:, 1] == 0)
    ref_loss, ref_grad = builtin(lp, targets, il, tl, 0)
    torch.testing.assert_close(loss, ref_loss, **TOL[torch.float64])
    torch.testing.assert_close(grad, ref_grad, **TOL[torch.float64], equal_nan=True)


def test_minus_inf_log_probs():
    """A frame where the target's classes are impossible: inf loss (no NaN), like the built-in."""
    lp = make_case(8, 6, 2, 4, 2)[0]
    lp[2, 0, :2] = float("-inf")  # sample 0 (target [1]) cannot emit blank or 1 at frame 2
    lp[4, 1, 3] = float("-inf")  # sample 1: one impossible class that the target never needs
    targets, il, tl = torch.tensor([[1, 1], [1, 2]]), torch.tensor([6, 6]), torch.tensor([1, 2])
    loss, grad = kernel(lp, targets, il, tl, 0)
    ref_loss, ref_grad = builtin(lp, targets, il, tl, 0)
    assert loss[0] == float("inf") and torch.isfinite(loss[1])
    torch.testing.assert_close(loss, ref_loss, **TOL[torch.float64])
    # exp(-inf) - 0 = 0 where the built-in's formula gives NaN (-inf - -inf); the numba path agrees
    assert grad[4, 1, 3] == 0 and torch.isnan(ref_grad[4, 1, 3])
    ref_grad[4, 1, 3] = 0.0
    torch.testing.assert_close(grad[:, 1], ref_grad[:, 1], **TOL[torch.float64])
    x = lp.clone().requires_grad_(True)
    ctc_loss(x, targets, il, tl, reduction="none", backend="numba").sum().backward()
    torch.testing.assert_close(grad, x.grad, **TOL[torch.float64], equal_nan=True)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss_backend_triton_reductions_layouts_zero_infinity(zero_infinity):
    """Through ctc_loss(backend='triton'): every reduction, padded and concatenated targets."""
    lp, targets, il, tl = make_case(9, 8, 4, 5, 4, 0, [8, 8, 3, 0], [3, 4, 3, 0])  # sample 2 infeasible
    flat = torch.cat([targets[b, : tl[b]] for b in range(4)])
    for reduction in ("none", "sum", "mean"):
        for layout in (targets, flat):
            x, y = lp.clone().requires_grad_(True), lp.clone().requires_grad_(True)
            ours = ctc_loss(x, layout, il, tl, reduction=reduction, zero_infinity=zero_infinity, backend="triton")
            ref = F.ctc_loss(y, layout, il, tl, reduction=reduction, zero_infinity=zero_infinity)
            torch.testing.assert_close(ours, ref, **TOL[torch.float64])
            weights = torch.linspace(0.5, 1.5, ours.numel(), dtype=ours.dtype).reshape(ours.shape)
            (ours * weights).sum().backward()
            (ref * weights).sum().backward()
            torch.testing.assert_close(x.grad, y.grad, **TOL[torch.float64], equal_nan=True)


def test_alignment_matches_torch_path():
    lp, targets, il, tl = make_case(10, 14, 6, 4, 5, 0, [14, 14, 0, 0, 5, 9], [5, 0, 0, 3, 5, 2])
    targets[0, :3] = torch.tensor([2, 2, 2])  # repeats need separating blanks
    for dtype in (torch.float64, torch.float32):
        path, score = ctc_alignment(lp.to(dtype), targets, il, tl, backend="triton")
        ref_path, ref_score = ctc_alignment(lp.to(dtype), targets, il, tl, backend="torch")
        assert torch.equal(path, ref_path)
        torch.testing.assert_close(score, ref_score, rtol=0, atol=0)
    assert score[3] == float("-inf") and torch.all(path[3] == -1)  # empty input, non-empty target
    assert score[2] == 0 and torch.all(path[2] == -1)  # empty input, empty target


def test_alignment_blank_not_zero():
    lp, targets, il, tl = make_case(11, 10, 3, 5, 3, 2, [10, 7, 10], [3, 3, 0])
    path, score = ctc_alignment(lp, targets, il, tl, blank=2, backend="triton")
    ref_path, ref_score = ctc_alignment(lp, targets, il, tl, blank=2, backend="torch")
    assert torch.equal(path, ref_path) and torch.equal(score, ref_score)


COMPILE = [
    ("forward_backward", torch.float32, dict(WANT_GRAD=True)),
    ("forward_backward", torch.float64, dict(WANT_GRAD=True)),
    ("viterbi", torch.float64, {}),
]


@pytest.mark.parametrize("name,dtype,flags", COMPILE, ids=[f"{c[0]}-{str(c[1])[6:]}" for c in COMPILE])
def test_kernels_compile_for_a_cuda_gpu(name, dtype, flags):
    """Triton's real compiler (to PTX and a sm_90 cubin; no GPU needed)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fp = {torch.float32: "*fp32", torch.float64: "*fp64"}[dtype]
    fn = triton.jit(ctc_triton._KERNELS[name])
    pointers = [p for p in fn.arg_names if p.endswith("_ptr")]
    types = {"tgt_ptr": "*i64", "il_ptr": "*i64", "tl_ptr": "*i64", "ll_ptr": "*fp64", "back_ptr": "*i8",
             "path_ptr": "*i64"}
    signature = {p: types.get(p, fp) for p in pointers}
    signature.update({a: "i64" for a in fn.arg_names if a.startswith("stride_")})
    signature["blank"] = "i32"
    constexprs = {"BLOCK": 64, **flags}
    signature.update({c: "constexpr" for c in constexprs})
    try:
        source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    except TypeError:  # triton < 3.3 names them differently; a GPU machine compiles them anyway
        pytest.skip(f"triton {triton.__version__}'s ASTSource takes other arguments")
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    assert "cubin" in compiled.asm and len(compiled.asm["ptx"]) > 1000


# ---------------------------------------------------------------- on a CUDA GPU


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(30, 5, 7, 10), (200, 16, 30, 60), (1000, 4, 30, 200)])
def test_cuda_matches_builtin(shape, dtype):
    T, N, C, S = shape
    lp, targets, il, tl = make_case(12, T, N, C, S)
    il[0], tl[0] = T, S  # one full-length sample
    lp = lp.to(dtype)
    dev = "cuda"
    for zero_infinity in (False, True):
        for reduction in ("none", "mean"):
            x = lp.to(dev).requires_grad_(True)
            ours = ctc_loss(x, targets.to(dev), il.to(dev), tl.to(dev), reduction=reduction, zero_infinity=zero_infinity)
            ours.sum().backward()
            y = lp.double().requires_grad_(True)  # exact reference on the CPU
            ref = F.ctc_loss(y, targets, il, tl, reduction=reduction, zero_infinity=zero_infinity)
            ref.sum().backward()
            torch.testing.assert_close(ours.cpu().double(), ref.detach(), **TOL[dtype], equal_nan=True)
            torch.testing.assert_close(x.grad.cpu().double(), y.grad, **TOL[dtype], equal_nan=True)


@pytest.mark.gpu
@cuda
def test_cuda_picks_triton_and_alignment_matches_cpu():
    from speechexp.losses.ctc.dispatch import DEFAULT

    assert DEFAULT.choose(None, torch.device("cuda")) == ("triton", True)
    lp, targets, il, tl = make_case(13, 300, 8, 20, 40)
    path, score = ctc_alignment(lp.cuda(), targets.cuda(), il.cuda(), tl.cuda())
    ref_path, ref_score = ctc_alignment(lp, targets, il, tl)
    assert torch.equal(path.cpu(), ref_path)
    torch.testing.assert_close(score.cpu(), ref_score, rtol=1e-12, atol=0)
    assert DEFAULT.triton_failed is None


@pytest.mark.gpu
@cuda
def test_cuda_half_precision_log_probs_computed_in_float32():
    from speechexp.losses.ctc import CTCLoss

    lp, targets, il, tl = make_case(14, 50, 4, 10, 10)
    half = lp.half().cuda().requires_grad_(True)
    loss = CTCLoss()(half, targets.cuda(), il.cuda(), tl.cuda())
    loss.backward()
    assert loss.dtype == torch.float32 and half.grad.dtype == torch.float16
    ref = F.ctc_loss(lp.half().double(), targets, il, tl)
    torch.testing.assert_close(loss.cpu().double(), ref, rtol=1e-4, atol=1e-5)
