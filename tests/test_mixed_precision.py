"""Mixed precision: the CTC and separation losses compute in float32 under autocast, and
the separator trains with ``trainer.precision=bf16-mixed`` on the CPU without non-finite
losses (``16-mixed`` needs a GPU; ``scripts/gpu_check.sh`` runs it there)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from speechexp.losses.ctc import CTCLoss, ctc_loss
from speechexp.losses.separation import L1Loss, NegSISNRLoss
from speechexp.train import train


def ctc_case(seed=0, T=40, N=4, C=8, S=10):
    gen = torch.Generator().manual_seed(seed)
    lp = torch.randn(T, N, C, generator=gen).log_softmax(-1)
    targets = torch.randint(1, C, (N, S), generator=gen)
    return lp, targets, torch.tensor([40, 35, 30, 40]), torch.tensor([10, 7, 9, 4])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_ctc_module_upcasts_half_precision(dtype):
    lp, targets, il, tl = ctc_case()
    half = lp.to(dtype).requires_grad_(True)
    loss = CTCLoss(reduction="mean")(half, targets, il, tl)
    assert loss.dtype == torch.float32
    loss.backward()
    assert half.grad.dtype == dtype and torch.isfinite(half.grad).all()
    # exactly the float32 loss of the half-precision values
    ref = F.ctc_loss(half.detach().float(), targets, il, tl)
    torch.testing.assert_close(loss.detach(), ref, rtol=1e-5, atol=1e-6)


def test_ctc_function_asks_for_float32_with_a_hint():
    lp, targets, il, tl = ctc_case()
    with pytest.raises(ValueError, match=r"float32 or float64.*\.float\(\)"):
        ctc_loss(lp.bfloat16(), targets, il, tl)


def test_ctc_under_cpu_autocast_is_float32():
    lp, targets, il, tl = ctc_case()
    logits = lp.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        projected = torch.nn.functional.linear(logits, torch.eye(8))  # bf16 under autocast
        assert projected.dtype == torch.bfloat16
        loss = CTCLoss()(projected.log_softmax(-1), targets, il, tl)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("loss_cls", [L1Loss, NegSISNRLoss])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_separation_losses_compute_in_float32(loss_cls, dtype):
    gen = torch.Generator().manual_seed(1)
    t = torch.arange(8000) / 8000
    refs = torch.stack([torch.sin(2 * math.pi * 440 * t), torch.sin(2 * math.pi * 2000 * t)])[None].repeat(2, 1, 1)
    est = refs + 1e-3 * torch.randn(refs.shape, generator=gen)  # about 57 dB SI-SNR
    exact = loss_cls(pit=True)(est, refs)
    half = est.to(dtype).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_cls(pit=True)(half, refs.to(dtype))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(half.grad).all()
    # the loss of the rounded inputs, computed in float32 (not in half precision)
    torch.testing.assert_close(loss.detach(), loss_cls(pit=True)(half.detach().float(), refs.to(dtype).float()))
    if loss_cls is L1Loss:
        assert loss.item() == pytest.approx(exact.item(), rel=0.1, abs=2e-3)


def test_separator_trains_with_bf16_mixed_on_cpu(compose_train):
    """A few bf16-mixed steps: every logged loss finite. The LSTM runs in float32 under CPU
    autocast (speechexp.models.recurrent); the head, masks, STFT and losses run under bf16."""
    cfg = compose_train("experiment=separation", "trainer.precision=bf16-mixed", "logger=csv",
                        "trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
                        "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
                        "dataset.preparer.n_examples=60")
    metrics = train(cfg)
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["train/loss_batch"]) for r in rows if r.get("train/loss_batch")]
    assert len(losses) == 6, losses  # 2 epochs x 3 batches, every one logged
    assert all(math.isfinite(v) for v in losses), losses
    for key in ("train/loss", "val/loss", "test/loss", "test/si_snr"):
        assert math.isfinite(metrics[key]), (key, metrics[key])
