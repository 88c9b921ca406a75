"""Seeded group-disjoint train/val/test splits (groups are speakers or sentences)."""

from __future__ import annotations

import random
from typing import Hashable, Iterable

from speechexp.errors import SpeechexpError

SPLITS = ("train", "val", "test")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Refuse held-out shares that leave no training data (a preparer checks them when built,
    before a run begins)."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise SpeechexpError(f"dataset.preparer.val_fraction={val_fraction} and test_fraction={test_fraction} leave "
                             "no training data; make each 0 or more and their sum less than 1.")


def split_groups(
    groups: Iterable[Hashable], val_fraction: float, test_fraction: float, seed: int = 0
) -> dict[Hashable, str]:
    """Assign each distinct group to 'train', 'val' or 'test'; same seed, same answer.

    Counts are ``round(fraction * n)``, at least one group for a positive fraction, and
    train always keeps at least one group. Groups are sorted by ``str`` before shuffling,
    so the result does not depend on input order.
    """
    check_fractions(val_fraction, test_fraction)
    unique = sorted(set(groups), key=str)
    random.Random(seed).shuffle(unique)
    n = len(unique)
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    while n_test + n_val >= n and (n_test or n_val):
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    out: dict[Hashable, str] = {}
    for i, group in enumerate(unique):
        out[group] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out
