"""Sweep figures: one bar per run, labelled by its overrides."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from speechexp.viz.spectrogram import save_figure  # noqa: E402


def plot_metric_per_run(runs: list[dict], metric: str, path: str | os.PathLike) -> None:
    """Horizontal bars of ``metric`` for each run (runs without it are skipped)."""
    shown = [r for r in runs if isinstance(r.get(metric), (int, float))]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(shown) + 1.2), constrained_layout=True)
    ax.barh([r["overrides"] or r["run"] for r in shown], [r[metric] for r in shown])
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    save_figure(fig, path)
