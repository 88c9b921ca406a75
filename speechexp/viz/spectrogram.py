"""Spectrogram and mel-spectrogram figures (librosa display)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import librosa
import librosa.display
import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechexp.io import atomic_path  # noqa: E402


def _stft_db(audio: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Magnitude STFT in dB re the file's peak: ``[time]`` → ``[freq, frames]``."""
    magnitude = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop_length))
    return librosa.amplitude_to_db(magnitude, ref=np.max, top_db=80.0)


def _mel_db(audio: np.ndarray, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> np.ndarray:
    """Mel power spectrogram in dB: ``[time]`` → ``[n_mels, frames]``."""
    mel = librosa.feature.melspectrogram(y=audio, sr=sample_rate, n_fft=n_fft,
                                         hop_length=hop_length, n_mels=n_mels)
    return librosa.power_to_db(mel, ref=np.max, top_db=80.0)


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_spectrogram_and_mel(audio: np.ndarray, sample_rate: int, path: str | os.PathLike,
                             title: str = "", n_fft: int = 256, hop_length: int = 64,
                             n_mels: int = 64) -> Path:
    """Write a PNG with the linear spectrogram and the mel spectrogram side by side."""
    fig, (ax_lin, ax_mel) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    image = librosa.display.specshow(_stft_db(audio, n_fft, hop_length), sr=sample_rate,
                                     hop_length=hop_length, x_axis="time", y_axis="linear", ax=ax_lin)
    ax_lin.set_title("Spectrogram")
    librosa.display.specshow(_mel_db(audio, sample_rate, n_fft, hop_length, n_mels), sr=sample_rate,
                             hop_length=hop_length, x_axis="time", y_axis="mel", ax=ax_mel)
    ax_mel.set_title("Mel spectrogram")
    fig.colorbar(image, ax=[ax_lin, ax_mel], format="%+2.0f dB")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_estimates_vs_references(estimates: Sequence[np.ndarray], references: Sequence[np.ndarray],
                                 sample_rate: int, path: str | os.PathLike, title: str = "",
                                 n_fft: int = 256, hop_length: int = 64) -> Path:
    """One row per source: ground-truth spectrogram left, reconstruction right.

    ``estimates`` and ``references`` are sequences of ``[time]`` arrays, one per source.
    """
    n_src = len(references)
    fig, axes = plt.subplots(n_src, 2, figsize=(10, 3.0 * n_src), squeeze=False, constrained_layout=True)
    image = None
    for k, (estimate, reference) in enumerate(zip(estimates, references)):
        for column, (audio, label) in enumerate(((reference, "ground truth"), (estimate, "reconstructed"))):
            ax = axes[k, column]
            image = librosa.display.specshow(_stft_db(np.asarray(audio, dtype=np.float32), n_fft, hop_length),
                                             sr=sample_rate, hop_length=hop_length, x_axis="time",
                                             y_axis="linear", ax=ax)
            ax.set_title(f"Source {k + 1}: {label}")
    fig.colorbar(image, ax=axes.ravel().tolist(), format="%+2.0f dB")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
