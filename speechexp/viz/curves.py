"""Learning curves of one run, drawn from its CSV log (``csv/metrics.csv``).

``figures/curves.png`` has one panel per kind of curve: the training loss per step
(``train/loss_batch``), the train and validation loss per epoch, and each of the task's
``curves`` metrics per epoch (SI-SNR for separation; CER, WER, UAR for asr_emotion), with
the best epoch of the monitored metric marked on every per-epoch panel.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from speechexp.viz.spectrogram import save_figure  # noqa: E402

CSV_LOG = Path("csv") / "metrics.csv"
CURVES_FILE = Path("figures") / "curves.png"


def epoch_table(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per epoch with the last non-empty value of each of ``columns`` (Lightning
    writes train and val metrics of one epoch on separate rows)."""
    present = [c for c in dict.fromkeys(columns) if c in frame.columns and c != "epoch"]
    if "epoch" not in frame.columns or not present:
        return pd.DataFrame(columns=["epoch", *present])
    rows = frame.dropna(subset=present, how="all")[["epoch", *present]]
    return rows.groupby("epoch", as_index=False).last()


def best_epoch(epochs: pd.DataFrame, monitor: str, mode: str) -> int | None:
    """The epoch whose ``monitor`` is best (``mode`` ``min`` or ``max``), or ``None``."""
    if monitor not in epochs.columns or epochs[monitor].dropna().empty:
        return None
    values = epochs.dropna(subset=[monitor])
    index = values[monitor].idxmax() if mode == "max" else values[monitor].idxmin()
    return int(values.loc[index, "epoch"])


def plot_curves(metrics_csv: str | os.PathLike, out: str | os.PathLike, monitor: str = "val/loss",
                mode: str = "min", metrics: list[str] | tuple[str, ...] = ()) -> Path | None:
    """Draw the run's curves from ``metrics_csv`` into ``out``; ``None`` (nothing written)
    when the log holds no training epoch (e.g. a test-only run)."""
    frame = pd.read_csv(metrics_csv)
    epochs = epoch_table(frame, ["train/loss", "val/loss", monitor, *metrics])
    steps = frame.dropna(subset=["train/loss_batch"]) if "train/loss_batch" in frame.columns else frame.iloc[:0]
    if epochs.empty and steps.empty:
        return None
    shown = [m for m in dict.fromkeys(metrics) if m in epochs.columns and not epochs[m].dropna().empty]
    panels = 2 + len(shown)
    columns = min(panels, 2)
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.4 * rows), squeeze=False,
                             constrained_layout=True)
    axes = axes.ravel()
    best = best_epoch(epochs, monitor, str(mode))
    ax = axes[0]
    if not steps.empty:
        ax.plot(steps["step"], steps["train/loss_batch"], linewidth=0.8, color="tab:blue")
    ax.set(title="train loss per step", xlabel="step", ylabel="loss")
    ax = axes[1]
    for column, color in (("train/loss", "tab:blue"), ("val/loss", "tab:orange")):
        if column in epochs.columns and not epochs[column].dropna().empty:
            values = epochs.dropna(subset=[column])
            ax.plot(values["epoch"], values[column], marker="o", markersize=3, color=color, label=column)
    ax.set(title="loss per epoch", xlabel="epoch", ylabel="loss")
    ax.legend(fontsize=8)
    for ax, metric in zip(axes[2:], shown):
        values = epochs.dropna(subset=[metric])
        ax.plot(values["epoch"], values[metric], marker="o", markersize=3, color="tab:green")
        ax.set(title=f"{metric} per epoch", xlabel="epoch", ylabel=metric)
    for ax in axes[1:panels]:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if best is not None:
            ax.axvline(best, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch {best} ({monitor})")
            ax.legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for ax in axes[panels:]:
        ax.set_visible(False)
    return save_figure(fig, out)
