"""Layers for padded ``[batch, frames, dim]`` sequences with per-utterance ``lengths [batch]``.

Masking helpers (valid frames, zeroing padding, statistics over valid frames, reversal
within each length), :class:`MaskedBatchNorm`, :class:`LockedDropout`, the exact padded
:class:`ExactBiLSTM` and the poolings to one vector per utterance. Padding never
reaches a valid frame in any of them.
"""

from __future__ import annotations

import torch
from torch import nn

from speechexp.models.recurrent import run_lstm


def valid_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """``[batch, frames]`` bool, true where the frame index is below the utterance's length."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def mask_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the frames at or beyond each length: ``[batch, frames, dim]`` → same shape."""
    return x * valid_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)


def masked_mean_std(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over valid frames: ``[batch, frames, dim]`` → two ``[batch, dim]``.

    Utterances of length 0 get zeros."""
    valid = valid_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
    count = valid.sum(1).clamp(min=1.0)
    mean = (x * valid).sum(1) / count
    var = (((x - mean.unsqueeze(1)) * valid) ** 2).sum(1) / count
    return mean, (var + eps).sqrt()


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each utterance's valid frames in time, leaving padding in place:
    ``[batch, frames, dim]`` → same shape. Applying it twice restores ``x``."""
    frames = x.shape[1]
    steps = torch.arange(frames, device=x.device)[None, :]
    index = lengths.to(x.device)[:, None] - 1 - steps
    index = torch.where(index >= 0, index, steps)  # padding positions map to themselves
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class MaskedBatchNorm(nn.Module):
    """Per-dimension standardisation with statistics over all valid frames of the batch
    (running averages in eval), so differences *between* utterances (loudness, tilt)
    survive: ``[batch, frames, dim]`` → same shape, padding zeroed."""

    def __init__(self, dim: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = valid_mask(lengths, x.shape[1])
        if self.training and bool(valid.any()):
            with torch.no_grad():
                frames = x[valid]  # [valid frames, dim]
                mean, var = frames.mean(0), frames.var(0, unbiased=False)
                if not bool(self.initialised):  # the first batch sets the statistics outright
                    self.running_mean.copy_(mean)
                    self.running_var.copy_(var)
                    self.initialised.fill_(True)
                else:
                    self.running_mean.lerp_(mean, self.momentum)
                    self.running_var.lerp_(var, self.momentum)
        out = (x - self.running_mean) / (self.running_var + self.eps).sqrt()
        return out * valid.unsqueeze(-1).to(out.dtype)


class LockedDropout(nn.Module):
    """Dropout with one mask per utterance and channel, shared by all its frames
    (variational dropout for RNNs, Gal & Ghahramani 2016): ``[batch, frames, dim]`` →
    same shape. It draws ``frames`` times fewer random numbers than ``nn.Dropout``,
    whose mask generation is a measurable part of a CPU training step."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {p}")
        self.p = float(p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


def sequence_dropout(p: float, locked: bool) -> nn.Module:
    """Dropout for ``[batch, frames, dim]`` tensors: per utterance and channel (locked) or per element."""
    return LockedDropout(p) if locked else nn.Dropout(p)


class ExactBiLSTM(nn.Module):
    """Stacked bidirectional LSTM over padded ``[batch, frames, input_size]`` →
    ``[batch, frames, 2 * hidden]``; outputs at padded frames are zero.

    Each layer runs a forward and a backward unidirectional ``nn.LSTM`` on padded
    tensors; the backward one reads each utterance reversed within its length
    (:func:`reverse_within_lengths`), which gives the packed-sequence result without
    packing (packing is several times slower on CPU)."""

    def __init__(self, input_size: int, hidden: int, layers: int = 2, dropout: float = 0.0,
                 locked_dropout: bool = False):
        super().__init__()
        sizes = [input_size] + [2 * hidden] * (layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(s, hidden, batch_first=True) for s in sizes)
        self.backward_layers = nn.ModuleList(nn.LSTM(s, hidden, batch_first=True) for s in sizes)
        self.dropout = sequence_dropout(dropout, locked_dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                x = self.dropout(x)
            ahead, _ = run_lstm(fwd, x)
            behind, _ = run_lstm(bwd, reverse_within_lengths(x, lengths))
            x = mask_frames(torch.cat([ahead, reverse_within_lengths(behind, lengths)], dim=-1), lengths)
        return x


class AttentionPooling(nn.Module):
    """Weighted mean over valid frames: ``[batch, frames, dim]`` → ``[batch, dim]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = valid_mask(lengths, hidden.shape[1])
        scores = self.score(hidden).squeeze(-1).masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # all-masked rows (length 0) → zeros
        return torch.einsum("bt,btd->bd", weights, hidden)


class StatsPooling(nn.Module):
    """Mean and standard deviation over valid frames: ``[batch, frames, dim]`` → ``[batch, 2 * dim]``."""

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.cat(masked_mean_std(hidden, lengths), dim=-1)
