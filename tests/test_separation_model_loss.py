"""LSTM separator shapes and the separation losses (with and without PIT)."""

import pytest
import torch
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

from speechexp.losses.separation import L1Loss, NegSISNRLoss
from speechexp.models.lstm_separator import LSTMSeparator


@pytest.mark.parametrize("front_end", ["stft", "time"])
@pytest.mark.parametrize("length", [8000, 1234])
def test_separator_maps_mixture_to_sources(front_end, length):
    model = LSTMSeparator(units=16, layers=2, front_end=front_end, n_src=2)
    estimates = model(torch.randn(3, length))
    assert estimates.shape == (3, 2, length)
    estimates.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_stft_masks_are_bounded_by_the_mixture():
    """Sigmoid masks in [0, 1] mean the estimates sum to at most twice the mixture energy."""
    model = LSTMSeparator(units=8, layers=1)
    mixture = torch.randn(2, 4000)
    estimates = model(mixture)
    assert estimates.pow(2).sum(-1).max() <= 2 * mixture.pow(2).sum(-1).max()


def test_unknown_front_end_is_rejected():
    with pytest.raises(ValueError, match="front_end='mel'"):
        LSTMSeparator(front_end="mel")


def test_l1_loss_value():
    ref = torch.zeros(2, 2, 10)
    est = torch.ones(2, 2, 10) * 0.5
    assert L1Loss()(est, ref).item() == pytest.approx(0.5)


def test_si_snr_loss_equals_negative_metric():
    ref = torch.randn(4, 2, 500)
    est = ref + 0.1 * torch.randn(4, 2, 500)
    expected = -scale_invariant_signal_noise_ratio(est, ref).mean()
    assert NegSISNRLoss()(est, ref).item() == pytest.approx(expected.item(), rel=1e-5)
    assert NegSISNRLoss()(est, ref).item() < -15  # good estimates: large negative loss


@pytest.mark.parametrize("loss_cls", [L1Loss, NegSISNRLoss])
def test_pit_ignores_source_order(loss_cls):
    ref = torch.randn(3, 2, 400)
    est = ref + 0.05 * torch.randn(3, 2, 400)
    swapped = est.flip(1)
    pit = loss_cls(pit=True)
    assert pit(swapped, ref).item() == pytest.approx(pit(est, ref).item(), rel=1e-5)
    assert loss_cls()(swapped, ref).item() > loss_cls()(est, ref).item() + 0.1
    loss, aligned = pit.aligned(swapped, ref)
    torch.testing.assert_close(aligned, est)
    assert loss.item() == pytest.approx(loss_cls()(est, ref).item(), rel=1e-5)  # the aligned pair's loss
