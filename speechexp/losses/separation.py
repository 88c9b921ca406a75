"""Separation losses over ``[batch, n_src, time]``, optionally permutation-invariant.

Each loss is a per-pair function ``(estimate [batch, time], reference [batch, time]) →
[batch]`` wrapped in :class:`SeparationLoss`, which averages over sources and batch and,
with ``pit=True``, first picks the best source permutation per example (torchmetrics).

Losses are computed in float32 whatever the inputs' dtype, with autocast off: under
``precision=16-mixed`` the model's output may be float16, whose energy sums overflow
(65504) and whose 11-bit mantissa cannot resolve a 40 dB SI-SNR; bfloat16 is coarser still.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.functional.audio import (
    permutation_invariant_training,
    pit_permutate,
    scale_invariant_signal_noise_ratio,
)


def l1_pairwise(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over time: ``[batch, time]`` × 2 → ``[batch]``."""
    return (estimate - reference).abs().mean(dim=-1)


def neg_si_snr_pairwise(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Negative SI-SNR in dB: ``[batch, time]`` × 2 → ``[batch]``."""
    return -scale_invariant_signal_noise_ratio(estimate, reference)


class SeparationLoss(nn.Module):
    """Average of a pairwise loss over sources and batch.

    Args:
        pit: align estimates to references with the permutation of lowest loss first,
            for datasets whose sources have no fixed order.
    """

    pairwise = staticmethod(l1_pairwise)

    def __init__(self, pit: bool = False):
        super().__init__()
        self.pit = pit

    def aligned(self, estimates: torch.Tensor, references: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[batch, n_src, time]`` × 2 → (scalar float32 loss, ``estimates`` reordered to best
        match ``references`` if ``pit``), from one search over permutations."""
        with torch.autocast(device_type=estimates.device.type, enabled=False):
            estimates32, references32 = estimates.float(), references.float()
            if self.pit:  # the best permutation's loss per example [batch], and the permutation
                best, perm = permutation_invariant_training(
                    estimates32, references32, self.pairwise, mode="speaker-wise", eval_func="min")
                return best.mean(), pit_permutate(estimates, perm)
            per_source = torch.stack(
                [self.pairwise(estimates32[:, k], references32[:, k]) for k in range(references.shape[1])], dim=1)
            return per_source.mean(), estimates

    def forward(self, estimates: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """``[batch, n_src, time]`` × 2 → scalar float32 loss (estimates aligned if ``pit``)."""
        return self.aligned(estimates, references)[0]


class L1Loss(SeparationLoss):
    """Mean absolute waveform error (the seed's loss)."""

    pairwise = staticmethod(l1_pairwise)


class NegSISNRLoss(SeparationLoss):
    """Negative scale-invariant SNR in dB (higher SI-SNR, lower loss)."""

    pairwise = staticmethod(neg_si_snr_pairwise)
