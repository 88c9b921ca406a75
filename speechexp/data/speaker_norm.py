"""Speaker-level feature normalisation (Kaldi's per-speaker CMN).

Each speaker's mean feature vector, over all frames of all its utterances in a split, is
subtracted from that speaker's features. It removes what is constant for a voice (its
timbre, loudness and spectral slope) and keeps what changes between its utterances,
which is how emotion is rendered: relative to each speaker's own baseline. It uses no
labels, only which utterances share a speaker, but it does need several utterances of
a speaker (the test split has every test speaker's utterances).

A speaker-normalised model that reads prosody (``emotion_sources`` with ``prosody``) also
needs each speaker's mean utterance prosody (:mod:`speechexp.models.prosody`): a speaker's statistics are then
``[n_mels + 6]`` (``[n_mels + 9]`` when the prosody includes pitch), the mean features followed by
the mean prosody, and the model reads each utterance's prosody minus its speaker's
(:func:`relative_prosody`).
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

import numpy as np
import torch

from speechexp.data.progress import progress
from speechexp.models.prosody import utterance_prosody


class SpeakerStatistics:
    """Per-speaker sums: every frame's features and, with ``prosody``, every utterance's
    prosody (with pitch where :meth:`add` is given it); :meth:`means` turns them into each
    speaker's statistics ``[dim (+ 6 or 9)]``."""

    def __init__(self, prosody: bool = False) -> None:
        self.prosody = bool(prosody)
        self.sums: dict[Hashable, torch.Tensor] = {}
        self.frames: dict[Hashable, int] = {}
        self.prosody_sums: dict[Hashable, torch.Tensor] = {}
        self.utterances: dict[Hashable, int] = {}

    def add(self, speaker: Hashable, features: np.ndarray | torch.Tensor,
            pitch: np.ndarray | torch.Tensor | None = None) -> None:
        """One utterance's ``features [frames, dim]`` (and its ``pitch [frames, 2]``, for a
        model whose prosody includes pitch)."""
        features = torch.as_tensor(features)
        self.sums[speaker] = self.sums.get(speaker, 0) + features.double().sum(0)
        self.frames[speaker] = self.frames.get(speaker, 0) + int(features.shape[0])
        if self.prosody:
            pitch = None if pitch is None else torch.as_tensor(pitch)[None]
            prosody = utterance_prosody(features[None].float(), torch.tensor([features.shape[0]]), pitch)[0]
            self.prosody_sums[speaker] = self.prosody_sums.get(speaker, 0) + prosody.double()
            self.utterances[speaker] = self.utterances.get(speaker, 0) + 1

    def means(self) -> dict[Hashable, torch.Tensor]:
        out = {}
        for speaker, total in self.sums.items():
            mean = total / max(self.frames[speaker], 1)
            if self.prosody:
                mean = torch.cat([mean, self.prosody_sums[speaker] / self.utterances[speaker]])
            out[speaker] = mean.float()
        return out


def speaker_statistics(features: Sequence[np.ndarray | torch.Tensor], prosody: bool = False,
                       pitch: Sequence[np.ndarray | torch.Tensor] | None = None) -> torch.Tensor:
    """One speaker's statistics ``[dim (+ 6 or 9)]`` over its utterances' ``features`` (each
    ``[frames, dim]``): the mean over every frame, then, with ``prosody``, the mean utterance
    prosody (including pitch when each utterance's ``pitch [frames, 2]`` is given)."""
    statistics = SpeakerStatistics(prosody)
    for index, item in enumerate(features):
        statistics.add(0, item, None if pitch is None else pitch[index])
    if not statistics.sums:
        raise ValueError("speaker statistics need at least one utterance")
    return statistics.means()[0]


def speaker_means(dataset: Any, prosody: bool = False, pitch: bool = False) -> dict[str, torch.Tensor]:
    """Each utterance's speaker statistics ``[dim]`` (``[dim + 6]`` with ``prosody``, ``[dim + 9]``
    with ``pitch`` too, read from the items' ``pitch``), keyed by the utterance's path.

    ``dataset`` is a split of :class:`speechexp.data.emotion_datamodule.EmotionSpeechDataset`
    (``rows`` with ``path`` and ``speaker`` columns; items with ``features [frames, dim]``);
    reading its items fills the datamodule's feature cache.
    """
    statistics = SpeakerStatistics(prosody)
    speakers = list(dataset.rows["speaker"])
    paths = list(dataset.rows["path"])
    for index, speaker in progress(enumerate(speakers), len(speakers), "Speaker statistics"):
        item = dataset[index]
        statistics.add(speaker, item["features"], item["pitch"] if prosody and pitch else None)
    means = statistics.means()
    return {path: means[speaker] for path, speaker in zip(paths, speakers)}


def subtract_speaker_means(features: torch.Tensor, lengths: torch.Tensor, means: list[torch.Tensor]) -> torch.Tensor:
    """``features [batch, frames, dim]`` minus each utterance's speaker mean (the first
    ``dim`` entries of its statistics); padding stays zero."""
    offset = torch.stack(means)[:, : features.shape[-1]].to(features.device, features.dtype).unsqueeze(1)
    valid = torch.arange(features.shape[1], device=features.device)[None, :] < lengths.to(features.device)[:, None]
    return (features - offset) * valid.unsqueeze(-1).to(features.dtype)


def relative_prosody(features: torch.Tensor, lengths: torch.Tensor, means: list[torch.Tensor],
                     pitch: torch.Tensor | None = None) -> torch.Tensor:
    """The prosody ``[batch, 6 or 9]`` of raw ``features [batch, frames, dim]`` (and the frames'
    ``pitch [batch, frames, 2]``) minus each utterance's speaker mean prosody (its statistics
    after the first ``dim`` entries)."""
    stacked = torch.stack(means).to(features.device, torch.float32)
    prosody = utterance_prosody(features, lengths, pitch)
    if stacked.shape[1] != features.shape[-1] + prosody.shape[-1]:
        raise ValueError(f"speaker statistics of size {stacked.shape[1]} do not match this model's "
                         f"{features.shape[-1]} features and {prosody.shape[-1]} prosody means")
    return prosody - stacked[:, features.shape[-1]:]
