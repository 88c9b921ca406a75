"""Bootstrap intervals of a set's CER and of two systems' paired difference (speechexp.tasks.intervals)."""

from __future__ import annotations

import numpy as np
import pytest
from torchmetrics.functional.text import char_error_rate

from speechexp.tasks.intervals import character_edits, paired_difference, rate_interval


def simulated_set(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` utterances of 3-12 characters, each character wrong with probability ``rate``."""
    lengths = rng.integers(3, 13, size=n)
    return rng.binomial(lengths, rate), lengths


def test_character_edits_count_what_the_pooled_cer_counts():
    hypotheses, texts = ["the cut", "dg", "front laft", "xy"], ["the cat", "dog", "front left", ""]
    edits, lengths = character_edits(hypotheses, texts)
    assert edits.tolist() == [1, 1, 1, 2] and lengths.tolist() == [7, 3, 10, 0]
    pooled = float(char_error_rate(hypotheses[:3], texts[:3]))
    assert edits[:3].sum() / lengths[:3].sum() == pytest.approx(pooled)
    with pytest.raises(ValueError, match="2 hypotheses for 1 texts"):
        character_edits(["a", "b"], ["a"])


def test_the_interval_holds_the_true_rate_about_as_often_as_it_says():
    rng = np.random.default_rng(0)
    inside, widths = 0, []
    for trial in range(150):
        edits, lengths = simulated_set(rng, 74, 0.3)
        low, high = rate_interval(edits, lengths, draws=1000, seed=trial)
        assert low <= edits.sum() / lengths.sum() <= high
        inside += low <= 0.3 <= high
        widths.append(high - low)
    assert 0.88 <= inside / 150 <= 0.99
    # a binomial rate over about 550 characters: 95 % of it within about +-0.04
    assert 0.06 < np.mean(widths) < 0.10


def test_four_times_the_utterances_halve_the_interval_and_one_utterance_has_none():
    edits, lengths = simulated_set(np.random.default_rng(1), 74, 0.5)
    low, high = rate_interval(edits, lengths)
    low4, high4 = rate_interval(np.tile(edits, 4), np.tile(lengths, 4))
    assert 0.4 < (high4 - low4) / (high - low) < 0.6
    assert rate_interval(np.array([2]), np.array([5])) is None
    assert rate_interval(np.zeros(6), np.full(6, 4)) == (0.0, 0.0)  # nothing wrong: no spread to draw


def test_a_paired_difference_sees_what_two_separate_intervals_cannot():
    rng = np.random.default_rng(2)
    edits_b, lengths = simulated_set(rng, 74, 0.6)
    fixed = (rng.random(74) < 0.3) & (edits_b > 0)  # A gets one character more right in 30 % of utterances
    edits_a = edits_b - fixed
    difference = paired_difference(edits_a, edits_b, lengths)
    assert difference.rate == pytest.approx(-fixed.sum() / lengths.sum())
    assert difference.high < 0 and difference.a_better == 1.0
    # apart, the two intervals overlap: the sets are too small to tell them apart unpaired
    low_a, high_a = rate_interval(edits_a, lengths)
    low_b, high_b = rate_interval(edits_b, lengths)
    assert low_b < high_a
    assert difference.high - difference.low < 0.5 * (high_b - low_b)


def test_two_equal_systems_differ_by_nothing_that_the_interval_excludes():
    rng = np.random.default_rng(3)
    edits_a, lengths = simulated_set(rng, 74, 0.5)
    edits_b = rng.binomial(lengths, 0.5)  # the same error rate, other errors
    difference = paired_difference(edits_a, edits_b, lengths)
    assert difference.low < 0 < difference.high and 0.02 < difference.a_better < 0.98
    same = paired_difference(edits_a, edits_a, lengths)
    assert (same.rate, same.low, same.high, same.a_better) == (0.0, 0.0, 0.0, 0.0)
    assert paired_difference(np.array([1]), np.array([0]), np.array([3])) is None
    with pytest.raises(ValueError, match="one edit count per utterance"):
        paired_difference(edits_a, edits_b[:-1], lengths)
