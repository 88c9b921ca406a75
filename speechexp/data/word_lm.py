"""A word n-gram language model fitted on training transcripts, written as an ARPA file.

The decoder library (flashlight-text, through its KenLM reader) scores word sequences
with a model in the standard ARPA format; what it cannot do is estimate one (KenLM's
``lmplz`` is a separate C++ build). This module estimates it: interpolated Kneser-Ney
with one absolute discount per order (``D = n1 / (n1 + 2 n2)`` from the counts of counts),
continuation counts for the lower orders, and the unigrams interpolated with a uniform
distribution over the vocabulary and ``<unk>``. Interpolated Kneser-Ney fits the ARPA
back-off form exactly: a seen n-gram stores its interpolated probability, and a history's
back-off weight is its interpolation weight ``gamma(h) = D * N1+(h .) / total(h)``.

Only the training split's transcripts go in: the test sentences stay unseen.
:func:`unigram_arpa` writes the other kind the decoders use: word frequencies of general
English (``decoder=beam_english``), with no context.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NO_PROBABILITY = -99.0  # log10 "probability" ARPA files give <s> (it is never predicted)


def _discount(counts: Counter) -> float:
    """The absolute discount ``n1 / (n1 + 2 n2)`` of one order, kept within [0.1, 0.9]."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return min(0.9, max(0.1, n1 / (n1 + 2 * n2))) if n1 + n2 else 0.5


def adjusted_counts(sentences: Iterable[list[str]], order: int) -> list[Counter]:
    """Kneser-Ney counts per order (index 0: unigrams): raw counts for the highest order and
    for n-grams that start with ``<s>``; for the others, how many distinct words precede them."""
    raw: Counter = Counter()
    predecessors: dict[tuple, set] = defaultdict(set)
    for words in sentences:
        padded = [BOS, *words, EOS]
        for k in range(1, order + 1):
            for start in range(len(padded) - k + 1):
                gram = tuple(padded[start: start + k])
                if gram == (BOS,):
                    continue
                if k == order or start == 0:
                    raw[gram] += 1
                else:
                    predecessors[gram].add(padded[start - 1])
    counts = [Counter() for _ in range(order)]
    for gram, count in raw.items():
        counts[len(gram) - 1][gram] += count
    for gram, before in predecessors.items():
        counts[len(gram) - 1][gram] += len(before)
    return counts


def fit_arpa(sentences: Iterable[str], order: int = 3) -> str:
    """The ARPA text of an interpolated Kneser-Ney ``order``-gram model of ``sentences``
    (each a string of space-separated words, already normalised)."""
    if order < 1:
        raise ValueError("order must be at least 1")
    tokenised = [s.split() for s in sentences if s.split()]
    if not tokenised:
        raise ValueError("no training transcripts to fit a language model on")
    counts = adjusted_counts(tokenised, order)
    vocabulary = sorted({w for (w,) in counts[0]} | {UNK})
    totals: list[Counter] = [Counter() for _ in range(order)]
    followers: list[Counter] = [Counter() for _ in range(order)]
    for k, grams in enumerate(counts):
        for gram, count in grams.items():
            totals[k][gram[:-1]] += count
            followers[k][gram[:-1]] += 1
    discounts = [_discount(grams) for grams in counts]

    def gamma(k: int, history: tuple) -> float:
        return discounts[k] * followers[k][history] / totals[k][history]

    probability: list[dict[tuple, float]] = [{} for _ in range(order)]
    uniform = 1.0 / len(vocabulary)
    for k in range(order):
        for gram, count in counts[k].items():
            history = gram[:-1]
            lower = probability[k - 1].get(gram[1:]) if k else uniform
            if lower is None:  # a suffix unseen one order down (cannot happen with these counts)
                lower = uniform
            probability[k][gram] = max(count - discounts[k], 0.0) / totals[k][history] + gamma(k, history) * lower
    probability[0][(UNK,)] = gamma(0, ()) * uniform

    histories = [set(totals[k + 1]) if k + 1 < order else set() for k in range(order)]
    lines = ["", "\\data\\"]
    entries: list[list[str]] = []
    for k in range(order):
        rows = []
        grams = dict(probability[k])
        if k == 0:
            grams[(BOS,)] = None
        for gram in sorted(grams, key=lambda g: tuple(g)):
            p = grams[gram]
            log_p = NO_PROBABILITY if p is None else math.log10(p)
            row = f"{log_p:.6f}\t{' '.join(gram)}"
            if gram in histories[k]:
                row += f"\t{math.log10(gamma(k + 1, gram)):.6f}"
            rows.append(row)
        entries.append(rows)
        lines.append(f"ngram {k + 1}={len(rows)}")
    for k, rows in enumerate(entries):
        lines += ["", f"\\{k + 1}-grams:", *rows]
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def unigram_arpa(frequencies: dict[str, float], end_probability: float = 0.05) -> str:
    """A unigram model of word ``frequencies`` (any positive scale) as ARPA text: ``</s>``
    has ``end_probability``, each word and ``<unk>`` (as frequent as the rarest word) share
    the rest in proportion to their frequencies. KenLM reads only models of order 2 and up,
    so the file also lists the bigram ``<s> </s>``, with the same probability as the unigram
    (every history then predicts the same distribution)."""
    if not frequencies or min(frequencies.values()) <= 0 or not 0 < end_probability < 1:
        raise ValueError("a unigram model needs positive word frequencies and 0 < end_probability < 1")
    rarest = min(frequencies.values())
    scale = (1 - end_probability) / (sum(frequencies.values()) + rarest)
    end = f"{math.log10(end_probability):.6f}"
    rows = [f"{NO_PROBABILITY}\t{BOS}\t0.000000", f"{end}\t{EOS}", f"{math.log10(rarest * scale):.6f}\t{UNK}"]
    rows += [f"{math.log10(f * scale):.6f}\t{word}" for word, f in frequencies.items()]
    return "\n".join(["\\data\\", f"ngram 1={len(rows)}", "ngram 2=1", "", "\\1-grams:", *rows,
                      "", "\\2-grams:", f"{end}\t{BOS} {EOS}", "", "\\end\\", ""])


def write_text_atomic(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
    return path


def write_arpa(sentences: Iterable[str], path: Path, order: int = 3) -> Path:
    """Fit the model and write it to ``path`` atomically (a temporary file, then a rename)."""
    return write_text_atomic(fit_arpa(sentences, order), path)


class ArpaModel:
    """An ARPA file read back, scored with its back-off rule (for tests and checks; decoding
    reads the file with KenLM)."""

    def __init__(self, arpa: str) -> None:
        self.table: dict[tuple, tuple[float, float]] = {}
        self.order, section = 0, 0
        for line in arpa.splitlines():
            if line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:].split("-")[0])
                self.order = max(self.order, section)
            elif section and line.strip() and not line.startswith("\\"):
                fields = line.split("\t")
                self.table[tuple(fields[1].split())] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
        self.vocabulary = {g[0] for g in self.table if len(g) == 1}

    def log10_prob(self, history: tuple[str, ...], word: str) -> float:
        """log10 P(word | history), backing off to shorter histories."""
        word = word if word in self.vocabulary else UNK
        history = tuple(history[-(self.order - 1):]) if self.order > 1 else ()
        backoff = 0.0
        while history + (word,) not in self.table:
            backoff += self.table.get(history, (0.0, 0.0))[1]
            history = history[1:]
        return backoff + self.table[history + (word,)][0]

    def sentence_log10_prob(self, words: list[str]) -> float:
        """log10 P(words, then </s> | <s>)."""
        context, total = [BOS], 0.0
        for word in [*words, EOS]:
            total += self.log10_prob(tuple(context), word)
            context.append(word)
        return total
