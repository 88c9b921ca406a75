"""EmoDB: what its file names say, and its preparer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from speechexp.data.corpora.base import CorpusPreparer, Parsed


EMODB_SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
EMODB_EMOTIONS = {
    "W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
    "T": "sadness", "N": "neutral",
}
EMODB_GENDER = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
    "13": "female", "14": "female", "15": "male", "16": "female",
}
_EMODB_RE = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")


def parse_emodb(stem: str) -> Parsed | None:
    """``SSTTTEV`` (e.g. ``03a01Fa``), or None if it does not parse."""
    m = _EMODB_RE.match(stem)
    if not m:
        return None
    speaker, text_id, emotion, _version = m.groups()
    if text_id not in EMODB_SENTENCES or speaker not in EMODB_GENDER:
        return None
    return Parsed(
        speaker=f"emodb_{speaker}", corpus_emotion=EMODB_EMOTIONS[emotion],
        text=EMODB_SENTENCES[text_id], text_id=text_id, gender=EMODB_GENDER[speaker], key=stem,
    )


@dataclass
class EmoDBPreparer(CorpusPreparer):
    """Berlin EmoDB audio (``SSTTTEV.wav``, e.g. ``03a01Fa.wav``)."""

    name: ClassVar[str] = "emodb"
    corpus: ClassVar[str] = "EmoDB"
    pattern: ClassVar[str] = "SSTTTEV.wav (e.g. 03a01Fa.wav)"

    def parse(self, stem: str) -> Parsed | None:
        return parse_emodb(stem)
