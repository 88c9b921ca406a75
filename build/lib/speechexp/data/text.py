"""Text normalisation and a character tokenizer for CTC (blank id 0).

Normalisation: Unicode NFC, curly apostrophes to ``'``, lowercase, German umlauts
either transliterated (ä→ae, ö→oe, ü→ue, ß→ss; the default, so EmoDB fits the English
alphabet) or kept (``umlauts='keep'`` adds äöüß to the default vocabulary), every
character outside the vocabulary becomes a space (so punctuation except the apostrophe
is stripped), and runs of spaces collapse to one.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

DEFAULT_VOCABULARY = " 'abcdefghijklmnopqrstuvwxyz"
UMLAUTS = "äöüß"
_TRANSLITERATION = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}
_APOSTROPHES = re.compile("[\u2018\u2019\u02bc`\u00b4]")
_SPACES = re.compile(r" +")


class CharTokenizer:
    """Characters to ids 1..N (blank = 0), with the normalisation described above."""

    blank_id = 0

    def __init__(self, vocabulary: str | Sequence[str] | None = None, umlauts: str = "transliterate") -> None:
        if umlauts not in ("transliterate", "keep"):
            raise ValueError("umlauts must be 'transliterate' or 'keep'")
        self.umlauts = umlauts
        if vocabulary is None:
            vocabulary = DEFAULT_VOCABULARY + (UMLAUTS if umlauts == "keep" else "")
        chars = list(vocabulary)
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("vocabulary must list distinct single characters")
        if " " not in chars:
            chars.insert(0, " ")
        self.chars: list[str] = chars
        self._ids = {c: i + 1 for i, c in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        """Number of output classes including the blank: ``len(chars) + 1``."""
        return len(self.chars) + 1

    def normalize(self, text: str) -> str:
        """The normalised form of ``text`` (only vocabulary characters, single spaces)."""
        text = _APOSTROPHES.sub("'", unicodedata.normalize("NFC", str(text))).lower()
        if self.umlauts == "transliterate":
            text = "".join(_TRANSLITERATION.get(c, c) for c in text)
        text = "".join(c if c in self._ids else " " for c in text)
        return _SPACES.sub(" ", text).strip()

    def encode(self, text: str) -> list[int]:
        """Token ids ``(S,)`` of the normalised text, each in ``1..vocab_size-1``."""
        return [self._ids[c] for c in self.normalize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids, skipping blanks (0) and out-of-range ids; no CTC collapsing."""
        n = len(self.chars)
        return "".join(self.chars[i - 1] for i in (int(x) for x in ids) if 1 <= i <= n)

    def ctc_decode(self, ids: Iterable[int]) -> str:
        """Greedy CTC output ``(T,)`` to text: merge repeats, then drop blanks."""
        collapsed, previous = [], None
        for i in (int(x) for x in ids):
            if i != previous:
                collapsed.append(i)
            previous = i
        return _SPACES.sub(" ", self.decode(collapsed)).strip()
