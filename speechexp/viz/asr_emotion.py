"""Figures of the ASR + emotion study: CTC alignment and emotion confusion matrix."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechexp.viz.spectrogram import save_figure  # noqa: E402


def plot_ctc_alignment(log_probs: np.ndarray, path: np.ndarray, labels: list[str], title: str,
                       out: str | os.PathLike, posteriors: np.ndarray | None = None) -> None:
    """Heat map of ``log_probs (frames, vocab)`` with the Viterbi ``path (frames,)`` on top;
    with ``posteriors (frames, vocab)`` (the soft alignment,
    :func:`speechexp.losses.ctc.ctc_alignment_targets`) a second panel shows them beside it.

    ``labels`` names each class id (id 0 is the blank).
    """
    panels = [("log-probability", log_probs, "magma", -15, 0)]
    if posteriors is not None:
        panels.append(("posterior given the transcript", posteriors, "viridis", 0, 1))
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 4.5 * len(panels)), constrained_layout=True, squeeze=False)
    valid = path >= 0
    for ax, (name, values, cmap, low, high) in zip(axes[:, 0], panels):
        image = ax.imshow(values.T, aspect="auto", origin="lower", cmap=cmap, vmin=low, vmax=high,
                          interpolation="nearest")
        ax.plot(np.flatnonzero(valid), path[valid], color="cyan" if cmap == "magma" else "red", linewidth=1.0,
                label="Viterbi path")
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xlabel("frame")
        ax.set_ylabel("class")
        ax.legend(loc="upper right", fontsize=7)
        fig.colorbar(image, ax=ax, label=name)
    axes[0, 0].set_title(title, fontsize=9)
    if posteriors is not None:
        axes[1, 0].set_title("Soft alignment (forward-backward occupation of each class)", fontsize=9)
    save_figure(fig, out)


def plot_confusion_matrix(matrix: np.ndarray, names: list[str], title: str, out: str | os.PathLike) -> None:
    """Row-normalised confusion matrix ``(true, predicted)`` with counts in the cells."""
    totals = matrix.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 1.0 * len(names) + 1.5), constrained_layout=True)
    image = ax.imshow(matrix / totals, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="fraction of true class")
    save_figure(fig, out)
