"""How far a test set's character error rate could move: bootstrap intervals over its utterances.

A character error rate pools a set's edits over its reference characters, so on a small set
(``../shared/real-dev`` holds 74 recordings) a few hard utterances move it. Drawing the
utterances again with replacement and recomputing the rate on each draw says how far
(Bisani and Ney, 2004; ``scipy.stats.bootstrap``, BCa intervals). A *paired* bootstrap draws
the same utterances for two systems, so what they share (the hard utterances) cancels out
of their difference: the test for "does checkpoint A read these recordings better than B?".
Neither interval covers what another training run of the same recipe would read: that spread
needs other runs (batch orders, seeds), measured beside it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import bootstrap
from torchmetrics.functional.text import char_error_rate

DRAWS = 4000  # resamples per interval: the 2.5 % tails then hold 100 draws each


@dataclass(frozen=True)
class Difference:
    """System A's error rate minus B's on the same utterances (negative: A reads them better),
    its interval, and the share of the bootstrap draws in which A's rate was the lower."""

    rate: float
    low: float
    high: float
    a_better: float


def character_edits(hypotheses: Sequence[str], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance, the character edits from each hypothesis to its text and the text's
    length, as torchmetrics' CER counts them (so ``edits.sum() / lengths.sum()`` is the set's
    CER): ``[n]`` and ``[n]`` integers. An empty text costs one edit per hypothesis character."""
    if len(hypotheses) != len(texts):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(texts)} texts")
    lengths = np.array([len(text) for text in texts], dtype=np.int64)
    edits = np.array([round(float(char_error_rate(h, t)) * len(t)) if t else len(h)
                      for h, t in zip(hypotheses, texts)], dtype=np.int64)
    return edits, lengths


def _pooled(*columns: np.ndarray, axis: int = -1) -> np.ndarray:
    """Error rate (or, given two edit columns, the difference of two rates) pooled over ``axis``."""
    *edits, lengths = columns
    total = lengths.sum(axis=axis)
    rate = edits[0].sum(axis=axis) / total
    return rate if len(edits) == 1 else rate - edits[1].sum(axis=axis) / total


def _bootstrap(columns: tuple[np.ndarray, ...], confidence: float, draws: int, seed: int):
    """scipy's paired BCa bootstrap of :func:`_pooled` → (interval low, high, the draws ``[draws]``).
    A set whose draws all agree (every utterance equally wrong) has no spread: BCa has no
    answer there, and the interval is the draws' own range."""
    with warnings.catch_warnings():  # scipy warns (and answers nan) when the draws have no spread
        warnings.simplefilter("ignore", RuntimeWarning)
        result = bootstrap(columns, _pooled, paired=True, vectorized=True, n_resamples=draws,
                           confidence_level=confidence, method="BCa", random_state=np.random.default_rng(seed))
    spread = result.bootstrap_distribution
    low, high = result.confidence_interval.low, result.confidence_interval.high
    if not (np.isfinite(low) and np.isfinite(high)):
        tail = 50 * (1 - confidence)
        low, high = np.percentile(spread, [tail, 100 - tail])
    return float(low), float(high), spread


def rate_interval(edits: np.ndarray, lengths: np.ndarray, confidence: float = 0.95, draws: int = DRAWS,
                  seed: int = 0) -> tuple[float, float] | None:
    """The ``confidence`` interval of the pooled error rate ``edits.sum() / lengths.sum()``
    (``edits [n]``, ``lengths [n]``, one per utterance) over draws of the utterances; ``None``
    for fewer than two utterances, where there is nothing to draw."""
    edits, lengths = np.asarray(edits, dtype=float), np.asarray(lengths, dtype=float)
    if edits.size < 2:
        return None
    low, high, _ = _bootstrap((edits, lengths), confidence, draws, seed)
    return low, high


def paired_difference(edits_a: np.ndarray, edits_b: np.ndarray, lengths: np.ndarray, confidence: float = 0.95,
                      draws: int = DRAWS, seed: int = 0) -> Difference | None:
    """System A's pooled error rate minus B's on the same utterances (``edits_a [n]`` and
    ``edits_b [n]`` against ``lengths [n]``, row for row), with its ``confidence`` interval from
    drawing the same utterances for both; ``None`` for fewer than two utterances."""
    edits_a, edits_b = np.asarray(edits_a, dtype=float), np.asarray(edits_b, dtype=float)
    lengths = np.asarray(lengths, dtype=float)
    if not edits_a.shape == edits_b.shape == lengths.shape:
        raise ValueError("paired_difference needs one edit count per utterance from each system")
    if edits_a.size < 2:
        return None
    low, high, spread = _bootstrap((edits_a, edits_b, lengths), confidence, draws, seed)
    return Difference(float(_pooled(edits_a, edits_b, lengths)), low, high, float(np.mean(spread < 0)))
