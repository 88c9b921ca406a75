"""TESS: what its file names say, and its preparer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from speechexp.data.corpora.base import CorpusPreparer, Parsed


# Emotion suffixes seen in circulating copies, lowercased and with separators removed.
TESS_EMOTIONS = {
    "angry": "angry", "anger": "angry", "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "happy": "happy", "happiness": "happy",
    "neutral": "neutral", "sad": "sad", "sadness": "sad", "ps": "pleasant_surprise",
    "pleasantsurprise": "pleasant_surprise", "pleasantsurprised": "pleasant_surprise",
    "surprise": "pleasant_surprise", "surprised": "pleasant_surprise",
}
_TESS_RE = re.compile(r"^(OAF|YAF)[_ ]+([A-Za-z']+)[_ ]+([A-Za-z_ ]+)$", re.IGNORECASE)


def parse_tess(stem: str) -> Parsed | None:
    """``{OAF|YAF}_{word}_{emotion}`` (e.g. ``OAF_back_Fear``), or None if it does not parse."""
    m = _TESS_RE.match(stem.strip())
    if not m:
        return None
    speaker, word, emotion = m.group(1).upper(), m.group(2).lower(), m.group(3)
    emotion = TESS_EMOTIONS.get(re.sub(r"[_ ]", "", emotion.lower()))
    if emotion is None:
        return None
    return Parsed(
        speaker=f"tess_{speaker}", corpus_emotion=emotion, text=f"say the word {word}",
        text_id=word, gender="female", key=f"{speaker}_{word}_{emotion}",
    )


@dataclass
class TessPreparer(CorpusPreparer):
    """TESS audio (``{OAF|YAF}_{word}_{emotion}.wav``); two speakers, so split by word by default."""

    split_by: str = "text"
    name: ClassVar[str] = "tess"
    corpus: ClassVar[str] = "TESS"
    pattern: ClassVar[str] = "{OAF|YAF}_{word}_{emotion}.wav (e.g. OAF_back_angry.wav)"

    def parse(self, stem: str) -> Parsed | None:
        return parse_tess(stem)
