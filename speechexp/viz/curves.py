"""Learning curves of one run, drawn from its CSV log (``csv/metrics.csv``).

``figures/curves.png`` has one panel per kind of curve, like the seed report's four plots:
the training loss per step (``train/loss_batch``), the first task metric per step (e.g.
``train/si_snr_batch``), the train and validation loss per epoch, and each of the task's
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


def _per_step(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.dropna(subset=[column])[["step", column]] if column in frame.columns else frame.iloc[:0]


def plot_curves(metrics_csv: str | os.PathLike, out: str | os.PathLike, monitor: str = "val/loss",
                mode: str = "min", metrics: list[str] | tuple[str, ...] = ()) -> Path | None:
    """Draw the run's curves from ``metrics_csv`` into ``out``; ``None`` (nothing written)
    when the log holds no training epoch (e.g. a test-only run).

    Panels: train loss per step; the first of ``metrics`` per training step when the log has
    it (``train/<name>_batch``, e.g. SI-SNR per batch); train/val loss per epoch; each of
    ``metrics`` per epoch, with its ``train/`` counterpart when logged."""
    frame = pd.read_csv(metrics_csv)
    names = [m.split("/", 1)[-1] for m in metrics]
    epochs = epoch_table(frame, ["train/loss", "val/loss", monitor, *metrics, *(f"train/{n}" for n in names)])
    steps = _per_step(frame, "train/loss_batch")
    if epochs.empty and steps.empty:
        return None
    shown = [m for m in dict.fromkeys(metrics) if m in epochs.columns and not epochs[m].dropna().empty]
    step_metric = f"train/{shown[0].split('/', 1)[-1]}_batch" if shown else None
    metric_steps = _per_step(frame, step_metric) if step_metric else frame.iloc[:0]
    # (title, kind, columns): kind "step" or "epoch"
    panels = [("train loss per step", "step", [("train/loss_batch", steps)])]
    if not metric_steps.empty:
        panels.append((f"train {step_metric.split('/', 1)[-1].removesuffix('_batch')} per step", "step",
                       [(step_metric, metric_steps)]))
    panels.append(("loss per epoch", "epoch", ["train/loss", "val/loss"]))
    for metric in shown:
        name = metric.split("/", 1)[-1]
        panels.append((f"{name} per epoch", "epoch", [f"train/{name}", metric]))
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.2 * rows), squeeze=False,
                             constrained_layout=True)
    axes = axes.ravel()
    best = best_epoch(epochs, monitor, str(mode))
    colors = {"train": "tab:blue", "val": "tab:orange"}
    for ax, (title, kind, series) in zip(axes, panels):
        if kind == "step":
            for column, values in series:
                ax.plot(values["step"], values[column], linewidth=0.8, color="tab:blue", label=column)
            ax.set(title=title, xlabel="step", ylabel=series[0][0].split("/", 1)[-1].removesuffix("_batch"))
        else:
            for column in series:
                if column in epochs.columns and not epochs[column].dropna().empty:
                    values = epochs.dropna(subset=[column])
                    ax.plot(values["epoch"], values[column], marker="o", markersize=3,
                            color=colors.get(column.split("/", 1)[0], "tab:green"), label=column)
            ax.set(title=title, xlabel="epoch", ylabel=series[-1].split("/", 1)[-1])
            if best is not None:
                ax.axvline(best, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch {best} ({monitor})")
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save_figure(fig, out)
