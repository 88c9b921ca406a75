"""Log-mel features (librosa or torch backend, same filterbank) and a feature cache.

Both backends compute ``log(mel_filterbank @ |STFT|^2 + log_floor)`` with a centred,
zero-padded Hann window and librosa's Slaney mel filterbank, so they agree to float
precision. :class:`FeatureCache` stores computed features in memory or on disk, keyed by
the audio file (absolute path, size, modification time) and the feature parameters.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import librosa
import numpy as np
import scipy.sparse
import torch

from speechexp.io import atomic_path, read_wav


@lru_cache(maxsize=16)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=16)
def _sparse_filterbank(*key) -> scipy.sparse.csr_matrix:
    # Sparse product: fast and free of BLAS threads, which thrash on tiny matrices when
    # the CPU is busy (e.g. a model training in the same process).
    return scipy.sparse.csr_matrix(_mel_filterbank(*key))


@contextlib.contextmanager
def _torch_single_thread() -> Iterator[None]:
    """Run small torch ops on one thread (restoring the previous setting afterwards)."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class LogMel:
    """Log-mel spectrogram settings; calling it maps audio ``[time]`` to ``[frames, n_mels]``.

    ``frames = 1 + time // hop_length`` (centred frames).
    """

    sample_rate: int = 16000
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    win_length: int | None = None
    fmin: float = 0.0
    fmax: float | None = None
    log_floor: float = 1e-6
    backend: str = "librosa"

    def __post_init__(self) -> None:
        if self.backend not in ("librosa", "torch"):
            raise ValueError(f"feature backend must be 'librosa' or 'torch', not {self.backend!r}")

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples."""
        return 1 + num_samples // self.hop_length

    def filterbank(self) -> np.ndarray:
        """Mel filterbank ``[n_mels, n_fft // 2 + 1]`` float32 (computed once per setting)."""
        return _mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel features ``[frames, n_mels]`` float32 of mono ``audio [time]``."""
        audio = np.asarray(audio, dtype=np.float32)
        win = self.win_length or self.n_fft
        if self.backend == "librosa":
            power = np.abs(librosa.stft(
                audio, n_fft=self.n_fft, hop_length=self.hop_length, win_length=win,
                window="hann", center=True, pad_mode="constant",
            )) ** 2
            mel = _sparse_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax) @ power
            return np.log(mel + self.log_floor).T.astype(np.float32)
        with torch.no_grad(), _torch_single_thread():
            spec = torch.stft(
                torch.from_numpy(audio), n_fft=self.n_fft, hop_length=self.hop_length,
                win_length=win, window=torch.hann_window(win), center=True,
                pad_mode="constant", return_complex=True,
            )
            mel = torch.from_numpy(self.filterbank().copy()) @ spec.abs().pow(2)
            return torch.log(mel + self.log_floor).T.contiguous().numpy().astype(np.float32)


def load_audio(path: str | os.PathLike, file_sample_rate: int, sample_rate: int) -> np.ndarray:
    """Read ``path`` (checked to be ``file_sample_rate`` Hz) as ``[time]`` at ``sample_rate`` Hz.

    Raises SpeechexpError naming the file when it is missing, corrupt or has another rate.
    """
    audio = read_wav(path, expected_sample_rate=int(file_sample_rate))
    if int(file_sample_rate) != int(sample_rate):
        audio = librosa.resample(audio, orig_sr=int(file_sample_rate), target_sr=int(sample_rate), res_type="soxr_hq")
    return audio.astype(np.float32)


class FeatureCache:
    """Cache of features per audio file: ``kind`` is 'memory', 'disk' or 'none'.

    The disk cache writes ``<directory>/<params-hash>/<file-hash>.npy`` atomically; a
    changed file (size or modification time) or changed parameters get a new entry.
    """

    def __init__(self, kind: str = "memory", directory: str | os.PathLike | None = None,
                 params: dict | None = None) -> None:
        if kind not in ("memory", "disk", "none"):
            raise ValueError(f"feature cache must be 'memory', 'disk' or 'none', not {kind!r}")
        if kind == "disk" and directory is None:
            raise ValueError("a disk feature cache needs a directory")
        self.kind = kind
        tag = hashlib.sha1(json.dumps(params or {}, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.directory = Path(directory) / tag if directory is not None else None
        self._memory: dict[str, np.ndarray] = {}

    @staticmethod
    def _key(path: str | os.PathLike) -> str:
        p = Path(path).resolve()
        try:
            st = p.stat()
            ident = f"{p}|{st.st_size}|{st.st_mtime_ns}"
        except OSError:
            ident = str(p)
        return hashlib.sha1(ident.encode()).hexdigest()

    def get(self, path: str | os.PathLike, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Cached features of ``path``, calling ``compute()`` (→ ``[frames, n_mels]``) on a miss."""
        if self.kind == "none":
            return compute()
        key = self._key(path)
        if key in self._memory:
            return self._memory[key]
        if self.kind == "disk":
            file = self.directory / f"{key}.npy"
            if file.is_file():
                try:
                    return np.load(file)
                except (OSError, ValueError):
                    file.unlink(missing_ok=True)  # damaged entry: recompute below
            value = compute()
            with atomic_path(file) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, value)
            return value
        value = compute()
        self._memory[key] = value
        return value


def feature_params(logmel: LogMel) -> dict:
    """The parameters that define ``logmel``'s output (for cache keys)."""
    return asdict(logmel)
