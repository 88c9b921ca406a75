"""General English text for training the recogniser beyond the grammar's few hundred words.

Word sequences drawn from ``wordfreq``'s English list (its most frequent words, sampled
by frequency flattened to ``frequency ** flatness`` so that rare words are heard too).
They are not grammatical sentences: they teach spelling from sound, while the grammar
sentences (:mod:`speechexp.data.sentences`) carry the emotion study. Natural English
sentences come from WordNet's usage examples ("the children returned from the seashore
with their shells"), as Debian's ``wordnet-base`` ships them (``make voices`` installs it).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from speechexp.errors import SpeechexpError

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
DEBIAN_WORDNET = "/usr/share/wordnet"  # wordnet-base's database folder
# A usage example as written: letters, spaces, apostrophes and sentence punctuation only
# (no digits or symbols, whose spoken form a transcript could not know).
EXAMPLE = re.compile(r"[A-Za-z][A-Za-z' ,;:.!?-]*")


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


def wordnet_dir() -> Path:
    """WordNet's database folder: WordNet's own ``WNSEARCHDIR`` where set, else Debian's."""
    return Path(os.environ.get("WNSEARCHDIR") or DEBIAN_WORDNET)


def usage_examples() -> tuple[str, ...]:
    """WordNet's usage examples of 3 to 12 words (about 40000 in WordNet 3.0), lowercase
    without punctuation, distinct, in the database's order."""
    return _usage_examples(wordnet_dir())


@lru_cache(maxsize=2)
def _usage_examples(folder: Path) -> tuple[str, ...]:
    files = [folder / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    if not all(f.is_file() for f in files):
        raise SpeechexpError(f"Natural English sentences need WordNet's database in {folder}; run `make voices` "
                             "(or `apt-get install wordnet-base`), or set WNSEARCHDIR to its dict folder.")
    out: dict[str, None] = {}
    for path in files:
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or " | " not in line:  # the licence header; synsets without a gloss
                continue
            for example in re.findall(r'"([^"]+)"', line.split(" | ", 1)[1]):
                if EXAMPLE.fullmatch(example.strip()):
                    text = " ".join(re.sub(r"[^a-z' ]", " ", example.lower()).split())
                    if 3 <= len(text.split()) <= 12:
                        out[text] = None
    return tuple(out)


def natural_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct WordNet usage examples (:func:`usage_examples`), a seeded sample:
    the same arguments give the same list (none needs no WordNet)."""
    if count <= 0:
        return []
    examples = usage_examples()
    if count > len(examples):
        raise SpeechexpError(f"{count} natural sentences were asked for and WordNet holds {len(examples)}; "
                             "lower dataset.preparer.general_sequences or general_sentences.")
    rng = np.random.default_rng(seed)
    return [examples[i] for i in rng.choice(len(examples), size=count, replace=False)]
