"""Phonemes of a transcript (espeak-ng's American English), a second CTC target.

English letters map onto sounds irregularly, so a small recogniser trained to spell may
learn each word's letters rather than its sounds; the phonemes are what the audio says (a
hypothesis: measured without a gain on people, docs/results.md#real-voices). The recogniser
can learn them beside the characters
(``dataset.datamodule.phonemes=true``, ``task.module.phoneme_weight``), and
``decoder=beam_phonemes`` spells words by looking their phonemes up in an English lexicon
(:mod:`speechexp.inference.decoders`).

Each word is phonemised alone (its citation form), so a word has the same phonemes in a
training sentence as in the decoder's lexicon. espeak's ASCII phoneme names are kept, with
stress marks dropped and rare variants merged into :data:`PHONEMES` (e.g. the flap ``t#``
into ``t``: the targets do not depend on a voice's accent). Words are separated by
:data:`WORD_BOUNDARY`.
"""

from __future__ import annotations

from functools import lru_cache

# espeak-ng's en-us phonemes, as counted over the 100000 most frequent English words
PHONEMES = (
    "p", "b", "t", "d", "k", "g", "f", "v", "T", "D", "s", "z", "S", "Z", "h", "tS", "dZ",
    "m", "n", "N", "l", "r", "w", "j",
    "@", "@L", "3", "3:", "a", "a#", "A:", "A@", "E", "e@", "eI", "I", "i", "i:", "i@",
    "0", "O:", "O@", "o@", "oU", "OI", "V", "U", "u:", "U@", "aI", "aI@", "aU",
)
# rare or accent-specific espeak names, merged into the ones above
MERGED = {
    "@2": "@", "@-": "@", "I2": "I", "I#": "I", "t#": "t", "t2": "t", "?": "t", "i::": "i:",
    "a#:": "a#", "aa": "a", "a:": "A:", "A~": "A:", "O": "O:", "O2": "0", "O~": "0", "o": "oU",
    "e": "eI", "i@3": "i@", "aI3": "aI@", "r-": "r", "n-": "n", "l#": "l", "x": "k", "C": "k",
}
IGNORED = {"", ";", "|", "!"}  # syllable and clause marks
WORD_BOUNDARY = "|"
VOICE = "en-us"


@lru_cache(maxsize=200_000)
def word_phonemes(word: str) -> tuple[str, ...]:
    """The phonemes of one lowercase ``word``, e.g. ``"cow"`` → ``("k", "aU")``; unknown
    espeak names are dropped (none occur in the 100000 most frequent words)."""
    from speechexp.data import espeak  # noqa: PLC0415 - loads the espeak-ng library

    out = []
    for name in espeak.phonemes(word, VOICE).replace(" ", "_").split("_"):
        name = name.replace("'", "").replace(",", "")  # primary and secondary stress
        name = MERGED.get(name, name)
        if name not in IGNORED and name in _IDS:
            out.append(name)
    return tuple(out)


_IDS = {p: i + 2 for i, p in enumerate(PHONEMES)}  # 0: the CTC blank, 1: the word boundary


class PhonemeTokenizer:
    """Normalised transcripts to phoneme ids (blank 0, word boundary 1, phonemes 2..)."""

    blank_id = 0
    boundary_id = 1
    symbols = ("<b>", WORD_BOUNDARY, *PHONEMES)

    @property
    def vocab_size(self) -> int:
        """Output classes including the blank and the word boundary."""
        return len(PHONEMES) + 2

    def spell(self, word: str) -> list[int]:
        """Phoneme ids of one word (empty for a word espeak gives no phoneme)."""
        return [_IDS[p] for p in word_phonemes(word)]

    def encode(self, text: str) -> list[int]:
        """Phoneme ids ``(S,)`` of an already normalised transcript, words joined by the boundary."""
        ids: list[int] = []
        for word in text.split():
            spelled = self.spell(word)
            if spelled:
                ids.extend(([self.boundary_id] if ids else []) + spelled)
        return ids

    def decode(self, ids) -> str:
        """Phoneme names of ids, space-separated (blanks dropped, no CTC collapsing)."""
        return " ".join(self.symbols[int(i)] for i in ids if 0 < int(i) < len(self.symbols))

    def sounds(self, ids) -> str:
        """The phoneme names of ids without blanks and word boundaries, space-separated: what
        a phoneme error rate compares (a word error rate over these strings)."""
        return self.decode(i for i in ids if int(i) != self.boundary_id)

    def greedy(self, log_probs, lengths) -> list[str]:
        """Best-path phonemes of ``log_probs (T, N, classes)`` within ``lengths [N]``, repeats
        merged, as :meth:`sounds` strings."""
        import torch  # noqa: PLC0415 - the tokenizer itself needs no torch

        best = log_probs.detach().argmax(-1).T.cpu()
        return [self.sounds(torch.unique_consecutive(row[:int(n)])) for row, n in zip(best, lengths.tolist())]
