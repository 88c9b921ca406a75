"""Sweep figures: one bar per run, labelled by its overrides."""

from __future__ import annotations

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from speechexp.viz.spectrogram import save_figure  # noqa: E402


def plot_metric_per_run(runs: list[dict], metric: str, path: str | os.PathLike) -> None:
    """Horizontal bars of ``metric`` for each run (runs without it are skipped)."""
    shown = [r for r in runs if isinstance(r.get(metric), (int, float))]
    labels = [textwrap.fill(r["overrides"] or r["run"], 45) for r in shown]  # long override lists wrap
    height = sum(0.18 * label.count("\n") + 0.4 for label in labels) + 1.2
    fig, ax = plt.subplots(figsize=(11, height), constrained_layout=True)
    ax.barh(range(len(shown)), [r[metric] for r in shown])
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    save_figure(fig, path)
