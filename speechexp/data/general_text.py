"""General English text for training the recogniser beyond the grammar's few hundred words.

Word sequences drawn from ``wordfreq``'s English list (its most frequent words, sampled
by frequency flattened to ``frequency ** flatness`` so that rare words are heard too).
They are not grammatical sentences: they teach spelling from sound, while the grammar
sentences (:mod:`speechexp.data.sentences`) carry the emotion study.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from speechexp.errors import SpeechexpError

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@lru_cache(maxsize=4)
def word_list(size: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The ``size`` most frequent English words (letters and apostrophes only) and their
    frequencies ``[size]``."""
    try:
        import wordfreq  # noqa: PLC0415 - the [voices] extra
    except ImportError:
        raise SpeechexpError(
            "General English text needs the wordfreq package; run `make voices` (or `pip install 'speechexp[voices]'`)."
        ) from None
    words = [w for w in wordfreq.top_n_list("en", int(size * 1.3) + 100) if WORD.fullmatch(w)][:size]
    return tuple(words), np.array([wordfreq.word_frequency(w, "en") for w in words])


def word_sequences(count: int, vocabulary: int = 20000, min_words: int = 1, max_words: int = 6,
                   flatness: float = 0.3, seed: int = 0) -> list[str]:
    """``count`` distinct lowercase word sequences of ``min_words``..``max_words`` words; the
    same arguments give the same list."""
    words, freqs = word_list(vocabulary)
    weights = freqs**flatness
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        n = int(rng.integers(min_words, max_words + 1))
        text = " ".join(words[i] for i in rng.choice(len(words), size=n, p=weights))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
