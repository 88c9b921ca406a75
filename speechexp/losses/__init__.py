"""Losses: :mod:`.separation` (SI-SNR, L1 with permutation-invariant training) and
:mod:`.ctc` (CTC from scratch, its Viterbi and soft alignments).

The CTC's public functions are also here (``speechexp.losses.ctc_alignment_targets``),
imported on first use, so importing :mod:`.separation` does not load numba.
"""

from __future__ import annotations

from typing import Any

_CTC_NAMES = ("CTCLoss", "ctc_alignment", "ctc_alignment_targets", "ctc_loss")
__all__ = list(_CTC_NAMES)


def __getattr__(name: str) -> Any:
    if name in _CTC_NAMES:
        from speechexp.losses import ctc  # noqa: PLC0415

        return getattr(ctc, name)
    raise AttributeError(f"module 'speechexp.losses' has no attribute {name!r}")
