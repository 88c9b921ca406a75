"""Transcripts, emotions and word timings from the multitask model's outputs.

The transcript is the greedy (best-path) CTC decoding, as in testing. Word timings come
from the Viterbi alignment of that transcript (:func:`speechexp.losses.ctc.ctc_alignment`):
a character spans the frames its label occupies on the best path, a word from its first
character's first frame to its last character's last frame. A CTC frame lasts
``hop_length / sample_rate * stride / ctc_upsample`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from speechexp.data.emotion_datamodule import pad_frames
from speechexp.data.text import CharTokenizer


@dataclass(frozen=True)
class Word:
    """A word of the transcript and when it is spoken, in seconds from the start."""

    word: str
    start_s: float
    end_s: float


@dataclass
class Transcription:
    """What :meth:`speechexp.inference.AsrEmotionModel.transcribe` returns for one recording."""

    text: str
    emotion: str
    emotion_probs: dict[str, float]
    words: list[Word] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        """``transcript``, ``emotion`` and ``p_<emotion>`` columns (probabilities to 6 places)."""
        return {"transcript": self.text, "emotion": self.emotion,
                **{f"p_{name}": round(p, 6) for name, p in self.emotion_probs.items()}}


def collate_features(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Items with ``features [frames, n_mels]`` (and optionally ``speaker_mean [n_mels (+ 6 or 9)]``
    and ``pitch [frames, 2]``) → ``features [batch, frames, n_mels]`` zero-padded,
    ``feature_lengths [batch]``, ``speaker_mean [batch, n_mels (+ 6 or 9)]`` when every item has
    one, ``pitch [batch, frames, 2]``, and the items' other keys as lists."""
    lengths = torch.tensor([int(item["features"].shape[0]) for item in items], dtype=torch.long)
    n_mels = int(items[0]["features"].shape[1])
    features = torch.zeros(len(items), max(1, int(lengths.max())), n_mels)
    for row, item in enumerate(items):
        features[row, : lengths[row]] = torch.as_tensor(item["features"])
    batch: dict[str, Any] = {"features": features, "feature_lengths": lengths}
    if all(item.get("speaker_mean") is not None for item in items):
        batch["speaker_mean"] = torch.stack([torch.as_tensor(item["speaker_mean"], dtype=torch.float32)
                                             for item in items])
    if items[0].get("pitch") is not None:  # a model whose prosody includes pitch
        batch["pitch"] = pad_frames([item["pitch"] for item in items], features.shape[1])
    for key in items[0]:
        if key not in ("features", "speaker_mean", "pitch"):
            batch[key] = [item[key] for item in items]
    return batch


def word_timings(log_probs: torch.Tensor, text: str, tokenizer: CharTokenizer, frame_seconds: float) -> list[Word]:
    """Words of ``text`` with their times, from the Viterbi alignment of ``text`` to
    ``log_probs [frames, classes]`` (one utterance's valid frames)."""
    from speechexp.losses.ctc import ctc_alignment  # noqa: PLC0415

    ids = tokenizer.encode(text)
    if not ids or log_probs.shape[0] == 0:
        return []
    path, score = ctc_alignment(log_probs.float().cpu(), torch.tensor(ids), log_probs.shape[0], len(ids),
                                blank=tokenizer.blank_id)
    if not torch.isfinite(score):
        return []
    spans: list[list[int]] = []  # [first frame, last frame] per character of text
    previous = tokenizer.blank_id
    for frame, label in enumerate(path.tolist()):
        if label != tokenizer.blank_id:
            if label != previous:
                spans.append([frame, frame])
            else:
                spans[-1][1] = frame
        previous = label
    words, current = [], []
    for char, span in zip(text, spans):
        if char == " ":
            if current:
                words.append(current)
            current = []
        else:
            current.append((char, span))
    if current:
        words.append(current)
    return [Word("".join(c for c, _ in word), round(word[0][1][0] * frame_seconds, 4),
                 round((word[-1][1][1] + 1) * frame_seconds, 4)) for word in words]


def transcriptions(log_probs: torch.Tensor, out_lengths: torch.Tensor, emotion_logits: torch.Tensor,
                   tokenizer: CharTokenizer, emotion_names: Sequence[str], frame_seconds: float,
                   words: bool = True, decoder: Callable[[torch.Tensor, torch.Tensor], list[str]] | None = None
                   ) -> list[Transcription]:
    """One :class:`Transcription` per utterance of the model's outputs: ``log_probs (T, N, C)``,
    ``out_lengths [N]``, ``emotion_logits [N, emotions]``; transcripts from ``decoder``
    (:mod:`speechexp.inference.decoders`), greedy when it is ``None``."""
    log_probs = log_probs.detach().float().cpu()
    probs = emotion_logits.detach().float().softmax(-1).cpu()
    texts = decoder(log_probs, out_lengths) if decoder is not None else None
    results = []
    for n, length in enumerate(out_lengths.cpu().tolist()):
        frames = log_probs[: int(length), n]
        text = texts[n] if texts is not None else tokenizer.ctc_decode(frames.argmax(-1))
        p = probs[n].tolist()
        results.append(Transcription(
            text=text, emotion=emotion_names[int(np.argmax(p))],
            emotion_probs={name: float(value) for name, value in zip(emotion_names, p)},
            words=word_timings(frames, text, tokenizer, frame_seconds) if words else []))
    return results
