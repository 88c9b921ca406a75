"""Speaker-level feature normalisation (Kaldi's per-speaker CMN).

Each speaker's mean feature vector, over all frames of all its utterances in a split, is
subtracted from that speaker's features. It removes what is constant for a voice (its
timbre, loudness and spectral slope) and keeps what changes between its utterances,
which is how emotion is rendered: relative to each speaker's own baseline. It uses no
labels, only which utterances share a speaker, but it does need several utterances of
a speaker (the test split has every test speaker's utterances).
"""

from __future__ import annotations

from typing import Any

import torch

from speechexp.data.progress import progress


def speaker_means(dataset: Any) -> dict[str, torch.Tensor]:
    """Each utterance's speaker mean ``[dim]``, keyed by the utterance's path.

    ``dataset`` is a split of :class:`speechexp.data.emotion_datamodule.EmotionSpeechDataset`
    (``rows`` with ``path`` and ``speaker`` columns; items with ``features [frames, dim]``);
    reading its items fills the datamodule's feature cache.
    """
    sums: dict[str, torch.Tensor] = {}
    frames: dict[str, int] = {}
    speakers = list(dataset.rows["speaker"])
    paths = list(dataset.rows["path"])
    for index, speaker in progress(enumerate(speakers), len(speakers), "Speaker statistics"):
        features = dataset[index]["features"].double()
        sums[speaker] = sums.get(speaker, 0) + features.sum(0)
        frames[speaker] = frames.get(speaker, 0) + features.shape[0]
    means = {s: (sums[s] / max(frames[s], 1)).float() for s in sums}
    return {path: means[speaker] for path, speaker in zip(paths, speakers)}


def subtract_speaker_means(features: torch.Tensor, lengths: torch.Tensor, means: list[torch.Tensor]) -> torch.Tensor:
    """``features [batch, frames, dim]`` minus each utterance's speaker mean ``[dim]``;
    padding stays zero."""
    offset = torch.stack(means).to(features.device, features.dtype).unsqueeze(1)
    valid = torch.arange(features.shape[1], device=features.device)[None, :] < lengths.to(features.device)[:, None]
    return (features - offset) * valid.unsqueeze(-1).to(features.dtype)
