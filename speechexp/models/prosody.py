"""Utterance prosody from log-mel frames: six numbers a listener hears as emotion.

Loudness and its dynamics, brightness (the spectral centroid) and its spread, and the
share of loud frames, computed in the power domain from the raw log-mel features (before
any speaker normalisation). Made relative to the speaker (each minus its mean over the
speaker's utterances, :mod:`speechexp.data.speaker_norm`) they read an unseen voice's
emotions where the model's pooled log-mel statistics do not (docs/results.md#real-voices):
a per-bin mean of log-mel values cannot be subtracted from a nonlinear measure such as the
log of the mean power, so these need speaker statistics of their own.
"""

from __future__ import annotations

import math

import torch

from speechexp.models.layers import valid_mask
from speechexp.models.pitch import PITCH_FEATURES, utterance_pitch

PROSODY_FEATURES = ("loudness", "energy_mean", "energy_std", "centroid", "centroid_std", "loud_share")
LOUD_FRAME_NATS = math.log(10.0)  # a frame within 10 dB of the utterance's loudness counts as loud


def prosody_size(pitch: bool) -> int:
    """How many numbers :func:`utterance_prosody` gives: 6, and 3 more with ``pitch``."""
    return len(PROSODY_FEATURES) + (len(PITCH_FEATURES) if pitch else 0)


def utterance_prosody(features: torch.Tensor, lengths: torch.Tensor, pitch: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """``features [batch, frames, n_mels]`` (natural-log mel power), ``lengths [batch]`` and,
    when given, the frames' ``pitch [batch, frames, 2]`` (:class:`speechexp.models.pitch.PitchTracker`)
    → ``[batch, prosody_size(pitch is not None)]``: the six numbers below, then the
    :data:`~speechexp.models.pitch.PITCH_FEATURES` (:func:`~speechexp.models.pitch.utterance_pitch`).
    The six come from each frame's energy (the log of its summed mel
    power) and centroid (the mean mel-bin position, 0 to 1, under its power):

    - ``loudness``: the log of the mean frame power (as RMS in dB, loud frames dominate);
    - ``energy_mean``, ``energy_std``: of the frame energies;
    - ``centroid``: the frames' centroids averaged with power weights, ``centroid_std``
      their power-weighted spread;
    - ``loud_share``: the share of frames within 10 dB of the loudness (pauses lower it).

    Padding is ignored; an utterance of length 0 gives zeros. Computed in float32.
    """
    features = features.float()
    frames, bins = features.shape[1], features.shape[2]
    valid = valid_mask(lengths, frames)
    empty = (lengths <= 0).unsqueeze(-1)
    count = lengths.clamp(min=1).to(features.dtype)
    energy = torch.logsumexp(features, dim=-1)  # [batch, frames]
    hidden = energy.masked_fill(~valid, float("-inf"))
    hidden = torch.where(empty, torch.zeros_like(hidden), hidden)  # no row of -inf only
    loudness = torch.logsumexp(hidden, dim=1) - count.log()
    weights = valid.to(features.dtype)
    energy_mean = (energy * weights).sum(1) / count
    energy_std = (((energy - energy_mean.unsqueeze(1)) ** 2 * weights).sum(1) / count).clamp(min=1e-8).sqrt()
    position = torch.linspace(0.0, 1.0, bins, device=features.device, dtype=features.dtype)
    centroid = (features.softmax(dim=-1) * position).sum(-1)  # [batch, frames]
    power = hidden.softmax(dim=1)
    centroid_mean = (power * centroid).sum(1)
    centroid_std = (power * (centroid - centroid_mean.unsqueeze(1)) ** 2).sum(1).clamp(min=1e-8).sqrt()
    loud = (energy > (loudness.unsqueeze(1) - LOUD_FRAME_NATS)) & valid
    loud_share = loud.sum(1).to(features.dtype) / count
    out = torch.stack([loudness, energy_mean, energy_std, centroid_mean, centroid_std, loud_share], dim=-1)
    if pitch is not None:
        out = torch.cat([out, utterance_pitch(pitch, lengths)], dim=-1)
    return out.masked_fill(empty, 0.0)
