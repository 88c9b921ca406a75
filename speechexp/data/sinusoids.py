"""Mixtures of two sinusoids: a low-band source 1 and a high-band source 2 (the seed's Q1).

Each example draws f1 from ``f1_range`` and f2 from ``f2_range`` (Hz), a random amplitude
and phase per source, and writes ``source1/``, ``source2/`` and ``mixture/`` WAVs plus
``metadata.csv`` with one row per example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speechexp.data.preparer import METADATA_FILE, DatasetPreparer
from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic, write_wav_atomic

SPLITS = ("train", "val", "test")
METADATA_COLUMNS = (
    "id", "source1", "source2", "mixture", "fs", "duration",
    "f1", "f2", "a1", "a2", "phase1", "phase2", "split",
)


def sinusoid(freq: float, amplitude: float, phase: float, fs: int, n_samples: int) -> np.ndarray:
    """``amplitude * sin(2π f t + phase)`` sampled at ``fs``: ``[n_samples]``."""
    t = np.arange(n_samples) / fs
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def split_counts(n_examples: int, fractions: dict[str, float]) -> dict[str, int]:
    """Turn split fractions into example counts that add up to ``n_examples``.

    Validation and test get at least one example each when there are three or more.
    """
    total = sum(fractions.get(s, 0.0) for s in SPLITS)
    if total <= 0 or any(fractions.get(s, 0.0) < 0 for s in SPLITS):
        raise SpeechexpError(f"Split fractions {dict(fractions)} must be non-negative with a positive sum.")
    counts = {s: int(round(n_examples * fractions.get(s, 0.0) / total)) for s in ("val", "test")}
    if n_examples >= 3:
        counts = {s: max(1, c) for s, c in counts.items()}
    counts["train"] = n_examples - counts["val"] - counts["test"]
    if counts["train"] < 1:
        raise SpeechexpError(f"{n_examples} examples leave no training data with splits {dict(fractions)}.")
    empty = [s for s in ("val", "test") if fractions.get(s, 0.0) > 0 and counts[s] == 0]
    if empty:  # a run needs every split it was given a share for
        raise SpeechexpError(f"dataset.preparer.n_examples={n_examples} leaves the {empty[0]} split empty; pass "
                             "dataset.preparer.n_examples=3 or more.")
    return counts


@dataclass
class SinusoidPreparer(DatasetPreparer):
    """Generates the two-sinusoid separation dataset (all fields define the data)."""

    n_examples: int = 100
    fs: int = 8000
    duration: float = 1.0
    f1_range: tuple[float, float] = (100.0, 900.0)
    f2_range: tuple[float, float] = (1100.0, 3500.0)
    amplitude_range: tuple[float, float] = (0.2, 0.5)
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    seed: int = 0
    name: str = "sinusoids"

    def __post_init__(self) -> None:
        self.f1_range = tuple(float(x) for x in self.f1_range)
        self.f2_range = tuple(float(x) for x in self.f2_range)
        self.amplitude_range = tuple(float(x) for x in self.amplitude_range)
        self.splits = {str(k): float(v) for k, v in dict(self.splits).items()}
        nyquist = self.fs / 2
        for label, (low, high) in (("f1_range", self.f1_range), ("f2_range", self.f2_range)):
            if not 0 < low <= high < nyquist:
                raise SpeechexpError(
                    f"dataset.preparer.{label}={list((low, high))} must satisfy 0 < low <= high < "
                    f"fs/2 = {nyquist:g} Hz; lower the frequencies or raise fs."
                )
        if self.n_examples < 1 or self.duration <= 0:
            raise SpeechexpError("dataset.preparer.n_examples and duration must be positive.")
        split_counts(self.n_examples, self.splits)  # splits these examples cannot fill: refused before building

    def build(self, folder: Path) -> None:
        rng = np.random.default_rng(self.seed)
        n_samples = int(round(self.fs * self.duration))
        counts = split_counts(self.n_examples, self.splits)
        split_of = [s for s in SPLITS for _ in range(counts[s])]
        rows = []
        for index, split in enumerate(split_of):
            f1, f2 = rng.uniform(*self.f1_range), rng.uniform(*self.f2_range)
            a1, a2 = rng.uniform(*self.amplitude_range, size=2)
            p1, p2 = rng.uniform(0, 2 * np.pi, size=2)
            s1 = sinusoid(f1, a1, p1, self.fs, n_samples)
            s2 = sinusoid(f2, a2, p2, self.fs, n_samples)
            name = f"{index:05d}.wav"
            for sub, audio in (("source1", s1), ("source2", s2), ("mixture", s1 + s2)):
                write_wav_atomic(folder / sub / name, audio, self.fs)
            rows.append({
                "id": f"{index:05d}", "source1": f"source1/{name}", "source2": f"source2/{name}",
                "mixture": f"mixture/{name}", "fs": self.fs, "duration": self.duration,
                "f1": round(f1, 4), "f2": round(f2, 4), "a1": round(a1, 5), "a2": round(a2, 5),
                "phase1": round(p1, 5), "phase2": round(p2, 5), "split": split,
            })
        write_csv_atomic(folder / METADATA_FILE, rows, METADATA_COLUMNS)
