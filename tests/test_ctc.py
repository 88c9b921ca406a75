"""speechexp.losses.ctc against torch's built-in CTC: values, gradients, errors, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speechexp.losses.ctc import numba as ctc_numba
from speechexp.losses.ctc import CTCLoss, ctc_loss

CONF = Path(__file__).resolve().parents[1] / "conf" / "loss"
TOL = {torch.float64: dict(rtol=1e-5, atol=1e-8), torch.float32: dict(rtol=1e-4, atol=1e-5)}


def make_case(seed, T, N, C, S, blank=0, min_il=0, min_tl=0, scale=1.0):
    """Random logits (T, N, C), padded targets avoiding the blank, mixed lengths."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=gen, dtype=torch.float64) * scale
    labels = [c for c in range(C) if c != blank]
    targets = torch.tensor(labels)[torch.randint(len(labels), (N, S), generator=gen)]
    il = torch.randint(min(min_il, T), T + 1, (N,), generator=gen)
    tl = torch.randint(min(min_tl, S), S + 1, (N,), generator=gen)
    return logits, targets, il, tl


def run_both(logits, targets, il, tl, dtype, reduction, zero_infinity, blank=0, backend=None, convert=lambda x: x):
    """Loss and logits-gradient of the custom loss and of the built-in."""
    out = []
    for fn in ("custom", "builtin"):
        x = logits.to(dtype).clone().requires_grad_(True)
        lp = x.log_softmax(-1)
        args = (lp, targets, *convert((il, tl)))
        if fn == "custom":
            loss = ctc_loss(*args, blank=blank, reduction=reduction, zero_infinity=zero_infinity, backend=backend)
        else:
            # the built-in takes lists/tuples but not int32 tensors mixed with lists
            loss = F.ctc_loss(lp, targets, il, tl, blank=blank, reduction=reduction, zero_infinity=zero_infinity)
        weights = torch.linspace(0.5, 1.5, loss.numel(), dtype=dtype).reshape(loss.shape)
        (loss * weights).sum().backward()  # unequal weights catch a wrongly scaled grad_out
        out.append((loss.detach(), x.grad))
    return out


def assert_matches(case, dtype, blank=0, backend=None, convert=lambda x: x):
    """Custom == built-in for every reduction, with and without zero_infinity.

    float32: the built-in's own float32 log-space recursion drifts (about 2e-4 on
    gradients at T=200), while ours accumulates in float64; so float32 results are
    held to 1e-4 against the built-in run in float64 on the same float32-rounded
    inputs, and to 1e-3 against the built-in's float32 result.
    """
    logits, targets, il, tl = case
    logits = logits.to(dtype).double()  # the values both dtypes can represent
    for zero_infinity in (False, True):
        for reduction in ("none", "sum", "mean"):
            (loss, grad), (ref_loss, ref_grad) = run_both(
                logits, targets, il, tl, dtype, reduction, zero_infinity, blank, backend, convert
            )
            assert loss.dtype == ref_loss.dtype and loss.shape == ref_loss.shape
            if dtype == torch.float32:
                torch.testing.assert_close(loss, ref_loss, rtol=1e-3, atol=1e-3, equal_nan=True)
                torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-3, equal_nan=True)
                _, (ref_loss, ref_grad) = run_both(logits, targets, il, tl, torch.float64, reduction, zero_infinity, blank)
                loss, grad = loss.double(), grad.double()
            torch.testing.assert_close(loss, ref_loss, **TOL[dtype], equal_nan=True)
            torch.testing.assert_close(grad, ref_grad, **TOL[dtype], equal_nan=True)


# (seed, T, N, C, S, blank, min_il, min_tl): a spread over the requested matrix
CASES = [
    (0, 30, 5, 7, 10, 0, 0, 0),  # mixed lengths, input/target length 0, infeasible samples
    (1, 1, 3, 2, 1, 0, 0, 0),  # single frame, two classes
    (2, 50, 1, 100, 20, 0, 20, 0),  # one sample, many classes
    (3, 80, 64, 12, 30, 5, 40, 10),  # full batch, blank in the middle
    (4, 60, 8, 30, 0, 0, 0, 0),  # empty targets only (S = 0)
    (5, 40, 6, 4, 15, 3, 0, 0),  # few classes: many repeats, blank = C-1
    (6, 200, 16, 30, 60, 0, 100, 30),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
def test_matches_builtin_random(case, dtype):
    seed, T, N, C, S, blank, min_il, min_tl = case
    assert_matches(make_case(seed, T, N, C, S, blank, min_il, min_tl), dtype, blank=blank)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_builtin_long_sequences(dtype):
    assert_matches(make_case(7, 1000, 3, 30, 200, 0, 900, 150), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_backend_matches_builtin(dtype):
    """The vectorised path (used on CUDA) on CPU."""
    assert_matches(make_case(8, 25, 6, 6, 8), dtype, backend="torch")
    assert_matches(make_case(9, 20, 4, 5, 6, blank=2), dtype, blank=2, backend="torch")


def test_peaked_distributions_match_builtin():
    """Confident, trained-model-like outputs (log-probs down to -1000s) stay exact."""
    for scale in (30.0, 300.0):
        assert_matches(make_case(10, 120, 6, 10, 25, 0, 60, 5, scale=scale), torch.float64)


def test_repeats_at_minimum_length_and_one_below():
    # [1, 1, 2, 2, 2] needs 5 labels + 3 separating blanks = 8 frames
    targets = torch.tensor([[1, 1, 2, 2, 2]] * 3)
    logits = torch.randn(9, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    il, tl = torch.tensor([8, 7, 9]), torch.tensor([5, 5, 5])
    loss = ctc_loss(logits.log_softmax(-1), targets, il, tl, reduction="none")
    assert torch.isfinite(loss[0]) and torch.isfinite(loss[2]) and loss[1] == float("inf")
    assert_matches((logits, targets, il, tl), torch.float64)
    assert_matches((logits, targets, il, tl), torch.float32)


def test_concatenated_targets_equal_padded():
    logits, targets, il, tl = make_case(12, 30, 5, 8, 9)
    flat = torch.cat([targets[b, : tl[b]] for b in range(5)])
    lp = logits.log_softmax(-1)
    for reduction in ("none", "mean"):
        padded = ctc_loss(lp, targets, il, tl, reduction=reduction)
        torch.testing.assert_close(ctc_loss(lp, flat, il, tl, reduction=reduction), padded, rtol=0, atol=0)
        torch.testing.assert_close(padded, F.ctc_loss(lp, flat, il, tl, reduction=reduction), rtol=1e-10, atol=0)


def test_int32_and_list_lengths():
    case = make_case(13, 20, 4, 6, 7)
    assert_matches(case, torch.float64, convert=lambda lens: tuple(x.to(torch.int32) for x in lens))
    assert_matches(case, torch.float64, convert=lambda lens: tuple(x.tolist() for x in lens))


def test_unbatched_input():
    logits, targets, il, tl = make_case(14, 15, 1, 5, 4, min_il=10, min_tl=2)
    lp = logits[:, 0].log_softmax(-1)
    for reduction in ("none", "sum", "mean"):
        ours = ctc_loss(lp, targets[0], il[0], tl[0], reduction=reduction)
        ref = F.ctc_loss(lp, targets[0], il[0], tl[0], reduction=reduction)
        assert ours.shape == ref.shape == ()
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gradcheck(backend):
    logits, targets, il, tl = make_case(15, 7, 3, 4, 3, min_il=5)
    logits.requires_grad_(True)

    def loss_of(x):
        return ctc_loss(x.log_softmax(-1), targets, il, tl, reduction="none", backend=backend)

    assert torch.isfinite(loss_of(logits)).all()
    assert torch.autograd.gradcheck(loss_of, (logits,), eps=1e-6, atol=1e-7)


def test_frames_beyond_input_length_get_zero_gradient():
    logits, targets, il, tl = make_case(16, 12, 2, 5, 3, min_il=12)
    il = torch.tensor([6, 12])
    x = logits.clone().requires_grad_(True)
    ctc_loss(x.log_softmax(-1), targets, il, tl).backward()
    assert torch.all(x.grad[6:, 0] == 0) and torch.any(x.grad[:6, 0] != 0)


def test_infeasible_gradients_follow_builtin():
    """NaN rows for inf losses without zero_infinity, zeros with it."""
    lp = torch.randn(4, 2, 4, dtype=torch.float64).log_softmax(-1)
    targets, il, tl = torch.tensor([[1, 1], [1, 2]]), torch.tensor([2, 3]), torch.tensor([2, 2])
    for zero_infinity in (False, True):
        x = lp.clone().requires_grad_(True)
        loss = ctc_loss(x, targets, il, tl, reduction="sum", zero_infinity=zero_infinity)
        loss.backward()
        if zero_infinity:
            assert torch.isfinite(loss) and torch.all(x.grad[:, 0] == 0)
        else:
            assert loss == float("inf") and torch.isnan(x.grad[:2, 0]).all() and torch.all(x.grad[2:, 0] == 0)
        assert torch.isfinite(x.grad[:, 1]).all()


def test_kernel_hands_back_samples_it_cannot_do():
    """A frame where every usable class is -inf goes to the log-space fallback (and gives inf)."""
    lp = torch.randn(5, 2, 4, dtype=torch.float64).log_softmax(-1)
    lp[2, 0, :2] = float("-inf")  # sample 0 (target [1]) cannot emit blank or 1 at frame 2
    targets, il, tl = torch.tensor([[1], [1]]), np.array([5, 5]), np.array([1, 1])
    loss, status, grad = np.empty(2), np.zeros(2, np.int8), torch.exp(lp)
    ctc_numba.forward_backward_kernel(lp.numpy(), targets.numpy(), il, tl, 0, True, np.arange(2), loss, grad.numpy(), status)
    assert status.tolist() == [ctc_numba.STATUS_FALLBACK, ctc_numba.STATUS_OK]
    ours = ctc_loss(lp, targets, torch.tensor(il), torch.tensor(tl), reduction="none")
    torch.testing.assert_close(ours, F.ctc_loss(lp, targets, torch.tensor(il), torch.tensor(tl), reduction="none"))
    assert ours[0] == float("inf")


def test_no_grad_forward_equals_training_forward():
    logits, targets, il, tl = make_case(17, 40, 4, 9, 12)
    lp = logits.log_softmax(-1)
    with torch.no_grad():
        plain = ctc_loss(lp, targets, il, tl, reduction="none")
    tracked = ctc_loss(lp.clone().requires_grad_(True), targets, il, tl, reduction="none")
    torch.testing.assert_close(plain, tracked.detach(), rtol=0, atol=0)


def _good_args():
    lp = torch.randn(6, 2, 5).log_softmax(-1)
    return dict(log_probs=lp, targets=torch.tensor([[1, 2], [3, 4]]), input_lengths=torch.tensor([6, 5]), target_lengths=torch.tensor([2, 1]))


BAD = [
    (dict(blank=5), "blank"),
    (dict(blank=-1), "blank"),
    (dict(input_lengths=torch.tensor([7, 5])), "input_lengths"),
    (dict(input_lengths=torch.tensor([-1, 5])), "input_lengths"),
    (dict(target_lengths=torch.tensor([2, -1])), "target_lengths"),
    (dict(target_lengths=torch.tensor([3, 1])), "target_lengths"),
    (dict(input_lengths=torch.tensor([6.0, 5.0])), "input_lengths"),
    (dict(input_lengths=torch.tensor([6, 5, 4])), "input_lengths"),
    (dict(targets=torch.tensor([[0, 2], [3, 4]])), "blank"),
    (dict(targets=torch.tensor([[1, 9], [3, 4]])), "targets"),
    (dict(targets=torch.tensor([[1.0, 2.0], [3.0, 4.0]])), "targets"),
    (dict(targets=torch.tensor([1, 2])), "targets"),
    (dict(targets=torch.zeros(2, 2, 2, dtype=torch.long)), "targets"),
    (dict(log_probs=torch.randn(6, 2, 5, 1)), "log_probs"),
    (dict(log_probs=torch.randn(6, 2, 5).half()), "log_probs"),
    (dict(reduction="avg"), "reduction"),
    (dict(backend="cuda"), "backend"),
    (dict(threading="parallel"), "threading"),
]


@pytest.mark.parametrize("change,name", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_invalid_input_raises_value_error_naming_argument(change, name):
    args = {**_good_args(), **change}
    with pytest.raises(ValueError, match=name):
        ctc_loss(**args)


def test_valid_arguments_do_not_raise():
    assert torch.isfinite(ctc_loss(**_good_args()))


@pytest.mark.parametrize("threading", ["serial", "pool"])
def test_numba_thread_policies_give_the_same_numbers(threading):
    """Samples are independent, so splitting the batch over threads changes no bit."""
    logits, targets, il, tl = make_case(19, 80, 16, 8, 20, min_il=40)
    grads = {}
    for policy in ("auto", threading):
        x = logits.clone().requires_grad_(True)
        loss = CTCLoss(reduction="sum", threading=policy)(x.log_softmax(-1), targets, il, tl)
        loss.backward()
        grads[policy] = (loss.detach(), x.grad)
    torch.testing.assert_close(grads["auto"], grads[threading], rtol=0, atol=0)


def test_module_settings_are_checked_when_built():
    with pytest.raises(ValueError, match="threading must be one of"):
        CTCLoss(threading="parallel")
    with pytest.raises(ValueError, match="backend must be one of"):
        CTCLoss(backend="cuda")


def test_module_and_yaml_configs_agree():
    logits, targets, il, tl = make_case(18, 30, 6, 8, 10)
    lp = logits.log_softmax(-1)
    custom = instantiate(OmegaConf.load(CONF / "ctc_custom.yaml"))
    builtin = instantiate(OmegaConf.load(CONF / "ctc_builtin.yaml"))
    assert isinstance(custom, CTCLoss) and isinstance(builtin, torch.nn.CTCLoss)
    assert (custom.backend, custom.threading) == (None, "auto")
    assert (custom.blank, custom.reduction, custom.zero_infinity) == (builtin.blank, builtin.reduction, builtin.zero_infinity)
    torch.testing.assert_close(custom(lp, targets, il, tl), builtin(lp, targets, il, tl), rtol=1e-10, atol=0)
    module = CTCLoss(blank=0, reduction="none")
    torch.testing.assert_close(module(lp, targets, il, tl), F.ctc_loss(lp, targets, il, tl, reduction="none"), rtol=1e-10, atol=0)
