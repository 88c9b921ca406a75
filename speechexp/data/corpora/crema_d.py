"""CREMA-D: what its file names say, and its preparer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from speechexp.data.corpora.base import CorpusPreparer, Parsed


CREMA_D_SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}
CREMA_D_EMOTIONS = {
    "ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad",
}
CREMA_D_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
_CREMA_RE = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{2})$")


def parse_crema_d(stem: str) -> Parsed | None:
    """``AAAA_SSS_EEE_LL`` (e.g. ``1001_DFA_ANG_XX``), or None if it does not parse."""
    m = _CREMA_RE.match(stem)
    if not m:
        return None
    actor, sentence, emotion, level = m.group(1), *(g.upper() for g in m.groups()[1:])
    if not (1001 <= int(actor) <= 1091) or sentence not in CREMA_D_SENTENCES:
        return None
    if emotion not in CREMA_D_EMOTIONS or level not in CREMA_D_LEVELS:
        return None
    return Parsed(
        speaker=f"crema_d_{actor}", corpus_emotion=CREMA_D_EMOTIONS[emotion],
        text=CREMA_D_SENTENCES[sentence], text_id=sentence, intensity=CREMA_D_LEVELS[level],
        key=f"{actor}_{sentence}_{emotion}_{level}",
    )


@dataclass
class CremaDPreparer(CorpusPreparer):
    """CREMA-D audio (``AAAA_SSS_EEE_LL.wav``)."""

    name: ClassVar[str] = "crema_d"
    corpus: ClassVar[str] = "CREMA-D"
    pattern: ClassVar[str] = "AAAA_SSS_EEE_LL.wav (e.g. 1001_DFA_ANG_XX.wav)"

    def parse(self, stem: str) -> Parsed | None:
        return parse_crema_d(stem)
