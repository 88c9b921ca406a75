"""ctc_alignment_targets (soft alignment) against the gradient of PyTorch's built-in CTC."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechexp.losses import ctc_alignment_targets
from speechexp.losses.ctc import ctc_alignment


def random_case(seed, T=30, N=6, C=7, S=10, blank=0, scale=1.0):
    """The randomised matrix the CTC tests use: log-softmax of scaled normal logits, random
    labels other than blank, random input and target lengths (some infeasible)."""
    gen = torch.Generator().manual_seed(seed)
    lp = (torch.randn(T, N, C, generator=gen, dtype=torch.float64) * scale).log_softmax(-1)
    labels = torch.tensor([c for c in range(C) if c != blank])
    targets = labels[torch.randint(len(labels), (N, S), generator=gen)]
    il = torch.randint(0, T + 1, (N,), generator=gen)
    tl = torch.randint(0, S + 1, (N,), generator=gen)
    il[0], tl[0] = 3, S  # one sample no alignment fits
    return lp, targets, il, tl


def builtin_posteriors(lp, targets, il, tl, blank):
    """exp(log_probs) - dL/dlog_probs of the summed built-in loss, and the per-sample losses."""
    x = lp.clone().requires_grad_(True)
    losses = F.ctc_loss(x, targets, il, tl, blank=blank, reduction="none", zero_infinity=False)
    losses.sum().backward()
    return lp.exp() - x.grad, losses.detach()


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("seed,blank,scale", [(0, 0, 1.0), (1, 0, 3.0), (2, 3, 1.0), (3, 6, 5.0)])
def test_equals_exp_minus_builtin_gradient(seed, blank, scale, backend):
    lp, targets, il, tl = random_case(seed, blank=blank, scale=scale)
    gamma = ctc_alignment_targets(lp, targets, il, tl, blank=blank, backend=backend)
    expected, losses = builtin_posteriors(lp, targets, il, tl, blank)
    assert gamma.shape == lp.shape and gamma.dtype == lp.dtype
    feasible = torch.isfinite(losses)
    assert feasible.any() and (~feasible).any()  # the case covers both kinds
    for n in range(lp.shape[1]):
        frames = int(il[n])
        if feasible[n]:
            torch.testing.assert_close(gamma[:frames, n], expected[:frames, n], rtol=1e-9, atol=1e-10)
            torch.testing.assert_close(gamma[:frames, n].sum(-1), torch.ones(frames, dtype=lp.dtype))
            assert torch.all(gamma[frames:, n] == 0)  # padding
        else:
            assert torch.all(gamma[:, n] == 0)  # no alignment fits
    assert torch.all(gamma >= 0)


def test_float32_and_unbatched():
    lp, targets, il, tl = random_case(7, T=20, N=3, S=5)
    il, tl = torch.tensor([20, 18, 15]), torch.tensor([5, 4, 3])
    gamma32 = ctc_alignment_targets(lp.float(), targets, il, tl)
    expected, _ = builtin_posteriors(lp, targets, il, tl, 0)
    assert gamma32.dtype == torch.float32
    for n in range(3):
        torch.testing.assert_close(gamma32[: il[n], n], expected[: il[n], n].float(), rtol=1e-4, atol=1e-5)
    single = ctc_alignment_targets(lp[:, 1], targets[1, :4], torch.tensor(18), torch.tensor(4))
    assert single.shape == (20, lp.shape[2])
    torch.testing.assert_close(single, ctc_alignment_targets(lp, targets, il, tl)[:, 1])


def test_peaked_posteriors_follow_the_viterbi_path():
    """On confident log-probs the soft alignment concentrates on the Viterbi path."""
    lp, targets, il, tl = random_case(11, T=25, N=4, S=6, scale=8.0)
    il, tl = torch.full((4,), 25), torch.tensor([6, 5, 4, 3])
    gamma = ctc_alignment_targets(lp, targets, il, tl)
    path, _ = ctc_alignment(lp, targets, il, tl)
    agree = (gamma.argmax(-1).T == path).double().mean()
    assert agree > 0.9
