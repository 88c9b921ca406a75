"""RAVDESS: what its file names say, and its preparer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from speechexp.data.corpora.base import CorpusPreparer, Parsed


RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
    "06": "fearful", "07": "disgust", "08": "surprised",
}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
RAVDESS_CHANNELS = {"01": "speech", "02": "song"}
RAVDESS_INTENSITY = {"01": "normal", "02": "strong"}
_RAVDESS_RE = re.compile(r"^(0[123])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)$")


def parse_ravdess(stem: str) -> Parsed | None:
    """``MM-VV-EE-II-SS-RR-AA`` (e.g. ``03-01-05-02-01-01-12``), or None if it does not parse."""
    m = _RAVDESS_RE.match(stem)
    if not m:
        return None
    _modality, channel, emotion, intensity, statement, _rep, actor = m.groups()
    if not 1 <= int(actor) <= 24:
        return None
    return Parsed(
        speaker=f"ravdess_{actor}", corpus_emotion=RAVDESS_EMOTIONS[emotion],
        text=RAVDESS_STATEMENTS[statement], text_id=f"{RAVDESS_CHANNELS[channel]}_{statement}",
        intensity=RAVDESS_INTENSITY[intensity],
        gender="male" if int(actor) % 2 else "female", key=stem[3:],  # ignore modality
    )


@dataclass
class RavdessPreparer(CorpusPreparer):
    """RAVDESS audio (``MM-VV-EE-II-SS-RR-AA.wav``); ``vocal_channels`` picks speech/song."""

    vocal_channels: list[str] = field(default_factory=lambda: ["speech"])
    name: ClassVar[str] = "ravdess"
    corpus: ClassVar[str] = "RAVDESS"
    pattern: ClassVar[str] = "MM-VV-EE-II-SS-RR-AA.wav (e.g. 03-01-05-01-02-01-12.wav)"

    def parse(self, stem: str) -> Parsed | None:
        return parse_ravdess(stem)

    def keep(self, parsed: Parsed) -> bool:
        return parsed.text_id.split("_")[0] in self.vocal_channels
