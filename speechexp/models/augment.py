"""SpecAugment-style masking of features (Park et al., 2019), applied only in training.

Frequency masks blank ``freq_width`` or fewer adjacent feature bins; time masks blank up
to ``time_width`` (a fraction of each utterance's own length) adjacent frames within
the valid frames. Masked values are set to ``fill`` (0, the mean of normalised features).
``freq_warp`` first moves each utterance's spectrum as a vocal tract of another length
would (VTLP, Jaitly and Hinton, 2013): every frequency scaled by one factor drawn per
utterance from ``[1 - freq_warp, 1 + freq_warp]``, on the mel bins' own frequencies, so a
new speaker is heard every epoch. ``formant_warp`` bends that factor along the frequency
axis (a smooth random curve, one per utterance), so formants move by different ratios, as
they do between people whose vocal tracts differ in shape, not only in length.
``warp_drift`` lets that factor drift within the utterance (a smooth random curve over its
frames, one per utterance), so each stretch of speech aims its formants a little higher or
lower than the rest, as a person's vowels and transitions vary from one syllable to the next.
``time_warp`` is SpecAugment's own time warp: a random point of each utterance moves by up
to ``time_warp`` of its length, the frames before it stretched and those after it squeezed
(or the other way round), so the utterance keeps its length (and its CTC labels) while its
parts change speed, as people's do. In ``eval()`` mode the module returns its input unchanged.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import torch
from torch import nn


@lru_cache(maxsize=8)
def mel_centres(n_mels: int, top_hz: float) -> np.ndarray:
    """The centre frequencies (Hz) ``[n_mels]`` of librosa's (Slaney) mel bins up to ``top_hz``."""
    return librosa.mel_frequencies(n_mels=n_mels + 2, fmin=0.0, fmax=top_hz)[1:-1]


class SpecAugment(nn.Module):
    """Random frequency and time masks: ``features [batch, frames, dim]`` → same shape.

    Args:
        freq_masks: frequency masks per utterance; each is ``0..freq_width`` bins wide.
        freq_width: the widest frequency mask, in bins.
        time_masks: time masks per utterance; each is ``0..time_width * length`` frames wide.
        time_width: the widest time mask as a fraction of the utterance's valid length.
        fill: the value written into masked cells.
        freq_warp: the largest relative frequency scaling (0: none; 0.1: factors 0.9-1.1).
        top_hz: the features' highest frequency (the mel filterbank's ``fmax``, half the
            sample rate), which places the bins on the frequency axis for ``freq_warp``.
        formant_warp: the largest amplitude of each of three half-sine components
            (``sin(k pi u)``, ``u`` the bin's place on the mel axis, ``k = 1, 2, 3``) added
            to the log of ``freq_warp``'s factor (0: one factor for every frequency).
        time_warp: the largest move of the time-warp point, as a fraction of the utterance's
            valid length (0: none).
        warp_drift: the largest amplitude of each of four half-sine components
            (``sin(k pi t / length)``, ``k = 1..4``: the slowest spans the utterance, the
            fastest a quarter of it) added to the log of the warp factor of each frame (0: one
            factor for every frame).
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 10, time_masks: int = 2,
                 time_width: float = 0.05, fill: float = 0.0, freq_warp: float = 0.0, top_hz: float = 8000.0,
                 formant_warp: float = 0.0, time_warp: float = 0.0, warp_drift: float = 0.0):
        super().__init__()
        if freq_masks < 0 or time_masks < 0 or freq_width < 0 or not 0.0 <= time_width <= 1.0:
            raise ValueError("SpecAugment needs non-negative mask counts and widths and 0 <= time_width <= 1")
        if not 0.0 <= freq_warp < 1.0 or top_hz <= 0:
            raise ValueError("SpecAugment needs 0 <= freq_warp < 1 and a positive top_hz")
        if not 0.0 <= formant_warp < 0.5:
            raise ValueError("SpecAugment needs 0 <= formant_warp < 0.5")
        if not 0.0 <= time_warp < 0.5:
            raise ValueError("SpecAugment needs 0 <= time_warp < 0.5")
        if not 0.0 <= warp_drift < 0.25:
            raise ValueError("SpecAugment needs 0 <= warp_drift < 0.25")
        self.warp_drift = float(warp_drift)
        self.freq_warp, self.top_hz, self.formant_warp = float(freq_warp), float(top_hz), float(formant_warp)
        self.time_warp = float(time_warp)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), float(time_width)
        self.fill = float(fill)

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
                f"time_masks={self.time_masks}, time_width={self.time_width}, freq_warp={self.freq_warp}, "
                f"formant_warp={self.formant_warp}, time_warp={self.time_warp}, warp_drift={self.warp_drift}")

    def warp(self, features: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
        """``features [batch, frames, dim]`` with each row's spectrum scaled in frequency by
        ``factors [batch]`` (or ``[batch, dim]``, one per bin, or ``[batch, frames, dim]``, one per
        frame and bin): bin ``j`` (centre ``f_j``) reads the input at ``f_j / factor``,
        interpolated linearly between bins (held at the edges; never folding back, so the warp
        keeps the bins' order)."""
        batch, frames, dim = features.shape
        centres = torch.as_tensor(mel_centres(dim, self.top_hz), dtype=torch.float32, device=features.device)
        factors = factors.float()
        if factors.dim() < 3:  # [batch] or [batch, dim]: one factor for every frame
            factors = factors.reshape(batch, 1, -1)
        source = torch.cummax((centres / factors).clamp(centres[0], centres[-1]), dim=2).values
        upper = torch.searchsorted(centres, source.contiguous()).clamp(1, dim - 1)
        lower = upper - 1
        frac = ((source - centres[lower]) / (centres[upper] - centres[lower])).to(features.dtype)
        shape = (batch, frames, dim)  # an index of [batch, 1, dim] serves every frame alike
        below = features.gather(2, lower.expand(shape))
        above = features.gather(2, upper.expand(shape))
        return below + (above - below) * frac

    @staticmethod
    def time_warp_frames(features: torch.Tensor, lengths: torch.Tensor, points: torch.Tensor,
                         moves: torch.Tensor) -> torch.Tensor:
        """``features [batch, frames, dim]`` with each row's valid frames warped in time: the
        frame at ``points [batch]`` (a place within the row's length) moves to ``points + moves``,
        both sides scaled linearly to fit, interpolated between frames; padding stays as it is."""
        frames = features.shape[1]
        t = torch.arange(frames, device=features.device, dtype=torch.float32)[None, :]
        length = lengths.float()[:, None]
        point, target = points.float()[:, None], (points + moves).float()[:, None]
        before = t * point / target.clamp(min=1e-6)
        after = point + (t - target) * (length - 1 - point) / (length - 1 - target).clamp(min=1e-6)
        source = torch.where(t < target, before, after).clamp(min=0)
        source = torch.minimum(source, (length - 1).clamp(min=0))
        source = torch.where(t < length, source, t)  # padding reads itself
        lower = source.floor().long().clamp(max=frames - 1)
        upper = (lower + 1).clamp(max=frames - 1)
        frac = (source - lower.float()).to(features.dtype)[:, :, None]
        dim = features.shape[2]
        below = features.gather(1, lower[:, :, None].expand(-1, -1, dim))
        above = features.gather(1, upper[:, :, None].expand(-1, -1, dim))
        return below + (above - below) * frac

    def formant_curves(self, batch: int, dim: int, device: torch.device) -> torch.Tensor:
        """``[batch, dim]`` random smooth log-factors: ``sum_k a_k sin(k pi u)`` over
        ``k = 1, 2, 3``, each ``a_k`` uniform in ``±formant_warp``, zero at both ends."""
        place = torch.linspace(0.0, 1.0, dim, device=device)  # u: the bin's place on the mel axis
        k = torch.arange(1, 4, device=device, dtype=torch.float32)
        shapes = torch.sin(torch.pi * k[:, None] * place[None, :])  # [3, dim]
        amplitudes = (2 * torch.rand(batch, 3, device=device) - 1) * self.formant_warp
        return amplitudes @ shapes

    def drift_curves(self, lengths: torch.Tensor, frames: int) -> torch.Tensor:
        """``[batch, frames]`` random smooth log-factors over each row's valid frames:
        ``sum_k a_k sin(k pi t / length)``, ``k = 1..4``, each ``a_k`` uniform in ``±warp_drift``
        (zero at the utterance's ends and held there over its padding)."""
        place = (torch.arange(frames, device=lengths.device, dtype=torch.float32)[None, :]
                 / (lengths.float()[:, None] - 1).clamp(min=1)).clamp(max=1.0)  # t / length: [batch, frames]
        k = torch.arange(1, 5, device=lengths.device, dtype=torch.float32)
        shapes = torch.sin(torch.pi * k[None, :, None] * place[:, None, :])  # [batch, 4, frames]
        amplitudes = (2 * torch.rand(lengths.shape[0], 4, device=lengths.device) - 1) * self.warp_drift
        return (amplitudes[:, :, None] * shapes).sum(1)

    @staticmethod
    def _band_mask(count: int, widest: torch.Tensor, size: torch.Tensor, positions: int,
                   device: torch.device) -> torch.Tensor:
        """``[batch, positions]`` bool: ``count`` random bands per row, each ``0..widest[row]``
        wide and starting within ``0..size[row] - width``."""
        batch = widest.shape[0]
        mask = torch.zeros(batch, positions, dtype=torch.bool, device=device)
        grid = torch.arange(positions, device=device)[None, :]
        for _ in range(count):
            width = (torch.rand(batch, device=device) * (widest + 1).float()).long()  # 0..widest
            width = torch.minimum(width, size)
            start = (torch.rand(batch, device=device) * (size - width + 1).float()).long()  # 0..size-width
            mask |= (grid >= start[:, None]) & (grid < (start + width)[:, None])
        return mask

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``features [batch, frames, dim]``, ``lengths [batch]`` → masked features (training only)."""
        if not self.training or (self.freq_masks == 0 and self.time_masks == 0 and self.freq_warp == 0
                                 and self.formant_warp == 0 and self.time_warp == 0 and self.warp_drift == 0):
            return features
        batch, frames, dim = features.shape
        device = features.device
        lengths = lengths.to(device).clamp(min=0, max=frames)
        if self.time_warp:
            widest = self.time_warp * lengths.float()
            points = widest + torch.rand(batch, device=device) * (lengths - 1 - 2 * widest).clamp(min=0)
            moves = (2 * torch.rand(batch, device=device) - 1) * widest
            features = self.time_warp_frames(features, lengths, points, moves)
        if self.freq_warp or self.formant_warp or self.warp_drift:
            factors = (1.0 + (2 * torch.rand(batch, device=device) - 1) * self.freq_warp)[:, None, None]
            if self.formant_warp:
                factors = factors * self.formant_curves(batch, dim, device).exp()[:, None, :]
            if self.warp_drift:
                factors = factors * self.drift_curves(lengths, frames).exp()[:, :, None]
            features = self.warp(features, factors)
        mask = torch.zeros(batch, frames, dim, dtype=torch.bool, device=device)
        if self.freq_masks and self.freq_width:
            widest = torch.full((batch,), min(self.freq_width, dim), device=device)
            bins = self._band_mask(self.freq_masks, widest, torch.full((batch,), dim, device=device), dim, device)
            mask |= bins[:, None, :]
        if self.time_masks and self.time_width:
            widest = (lengths.float() * self.time_width).long()
            steps = self._band_mask(self.time_masks, widest, lengths, frames, device)
            mask |= steps[:, :, None]
        return features.masked_fill(mask, self.fill)
