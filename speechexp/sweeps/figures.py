"""Sweep figures: a heatmap over two parameters, a line over one, bars otherwise.

Parameter values arrive as the strings of the overrides; numeric ones are placed on
numeric axes, logarithmic where the values are log-spaced (e.g. 3e-4, 1e-3, 3e-3).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechexp.viz.spectrogram import save_figure  # noqa: E402


def numeric(values: list[str]) -> np.ndarray | None:
    """The values as floats, or ``None`` when any is not a number."""
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return None


def log_spaced(values: np.ndarray | None) -> bool:
    """Positive values spanning at least 4x that are more evenly spaced on a log scale than
    on a linear one (two values: at least 10x apart)."""
    if values is None:
        return False
    ordered = np.unique(values)
    if len(ordered) < 2 or ordered[0] <= 0 or ordered[-1] / ordered[0] < 4:
        return False
    if len(ordered) == 2:
        return bool(ordered[-1] / ordered[0] >= 10)

    def unevenness(x: np.ndarray) -> float:
        steps = np.diff(x)
        return float(np.std(steps) / np.mean(steps))
    return unevenness(np.log(ordered)) < unevenness(ordered)


def cell_edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Edges of cells centred on sorted ``values`` (geometric midpoints on a log axis)."""
    x = np.log(values) if log else values.astype(float)
    if len(x) == 1:
        edges = np.array([x[0] - 0.5, x[0] + 0.5])
    else:
        mid = (x[1:] + x[:-1]) / 2
        edges = np.concatenate([[2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]])
    return np.exp(edges) if log else edges


def _axis(ax, which: str, key: str, values: list[str]) -> tuple[np.ndarray, bool]:
    """Set up one heatmap axis; return the cell edges and whether it is logarithmic."""
    numbers = numeric(values)
    log = log_spaced(numbers)
    if numbers is None:
        edges = np.arange(len(values) + 1) - 0.5
        getattr(ax, f"set_{which}ticks")(range(len(values)), values)
    else:
        edges = cell_edges(numbers, log)
        if log:
            getattr(ax, f"set_{which}scale")("log")
        getattr(ax, f"set_{which}ticks")(numbers, values)
        getattr(ax, f"{which}axis").set_minor_locator(matplotlib.ticker.NullLocator())
    getattr(ax, f"set_{which}label")(key + (" (log scale)" if log else ""))
    return edges, log


def plot_heatmap(keys: list[str], rows: list[str], cols: list[str], table: dict[tuple[str, str], float | None],
                 metric: str, path: str | os.PathLike) -> Path:
    """Heatmap of ``metric`` over ``keys[0]`` (y: ``rows``) x ``keys[1]`` (x: ``cols``);
    ``table`` maps ``(row, col)`` to the value (missing or failed cells stay blank)."""
    grid = np.array([[table.get((r, c)) if table.get((r, c)) is not None else np.nan for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(1.4 * len(cols) + 3, 0.9 * len(rows) + 2), constrained_layout=True)
    x_edges, _ = _axis(ax, "x", keys[1], cols)
    y_edges, _ = _axis(ax, "y", keys[0], rows)
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(grid), cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label=metric)
    x_mid, y_mid = _centres(x_edges, ax.get_xscale()), _centres(y_edges, ax.get_yscale())
    finite = grid[np.isfinite(grid)]
    threshold = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i, y in enumerate(y_mid):
        for j, x in enumerate(x_mid):
            value = grid[i, j]
            label = "failed" if math.isnan(value) else f"{value:.3g}"
            ax.text(x, y, label, ha="center", va="center", fontsize=9,
                    color="white" if math.isnan(value) or value < threshold else "black")
    ax.set_title(f"{metric} by {keys[0]} and {keys[1]}")
    return save_figure(fig, path)


def _centres(edges: np.ndarray, scale: str) -> np.ndarray:
    return np.sqrt(edges[1:] * edges[:-1]) if scale == "log" else (edges[1:] + edges[:-1]) / 2


def plot_line(key: str, order: list[str], points: dict[str, tuple[float, float | None]], metric: str,
              path: str | os.PathLike) -> Path:
    """``metric`` against one swept parameter; error bars (std over seeds) where given."""
    numbers = numeric(order)
    x = numbers if numbers is not None else np.arange(len(order))
    means = [points[v][0] for v in order]
    errors = [points[v][1] for v in order]
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    ax.errorbar(x, means, yerr=None if all(e is None for e in errors) else [e or 0.0 for e in errors],
                marker="o", capsize=4)
    if log_spaced(numbers):
        ax.set_xscale("log")
    ax.set_xticks(x, order)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_bars(labels: list[str], values: list[float], errors: list[float] | None, metric: str,
              path: str | os.PathLike) -> Path:
    """Horizontal bars of ``metric`` per configuration (error bars over seeds if given)."""
    height = 0.45 * len(labels) + 1.2
    fig, ax = plt.subplots(figsize=(10, height), constrained_layout=True)
    ax.barh(range(len(labels)), values, xerr=errors, capsize=3)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    return save_figure(fig, path)
