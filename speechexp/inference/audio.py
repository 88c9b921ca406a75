"""A user's audio as the models read it: any file soundfile (or librosa) reads, any rate,
any channel count, integer or float samples → mono float32 ``[time]``.

Arrays passed to the API are ``[time]`` or two-dimensional with the channel axis the
shorter one (``[time, channels]`` as soundfile returns, or ``[channels, time]`` as
librosa does); integer samples are scaled to [-1, 1) by their type's range.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from speechexp.errors import SpeechexpError

RESAMPLER = "soxr_hq"  # the datamodules' resampler: features of a resampled file match training's


def to_mono(audio: np.ndarray | list, name: str = "audio") -> np.ndarray:
    """``audio`` (see the module docstring) as mono float32 ``[time]``, channels averaged.

    Raises:
        SpeechexpError: a path or text instead of samples, more than two dimensions, no
            samples, or values that are not finite.
    """
    if isinstance(audio, (str, bytes, os.PathLike)):
        raise SpeechexpError(f"{name} is a path or text, not samples; read the file first (read_audio(path) in "
                             "speechexp.inference.audio gives its samples and rate), or run speechexp-infer input=PATH.")
    array = np.asarray(audio.detach().cpu().numpy() if hasattr(audio, "detach") else audio)
    if not np.issubdtype(array.dtype, np.number):
        raise SpeechexpError(f"{name} holds {array.dtype} values, not numbers; pass samples as numbers.")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        array = (array.astype(np.float64) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        array = array.mean(axis=1 if array.shape[0] >= array.shape[1] else 0)
    elif array.ndim != 1:
        raise SpeechexpError(f"{name} has shape {array.shape}; pass samples as [time] or [time, channels].")
    if array.size == 0:
        raise SpeechexpError(f"{name} has no samples; pass audio at least one sample long.")
    if not np.all(np.isfinite(array)):
        raise SpeechexpError(f"{name} holds NaN or infinite samples; pass finite audio.")
    return np.ascontiguousarray(array, dtype=np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``audio [time]`` at ``from_rate`` Hz → ``[round(time * to_rate / from_rate)]`` at ``to_rate`` Hz."""
    if int(from_rate) == int(to_rate):
        return audio
    import librosa  # noqa: PLC0415 - only when a rate differs

    return librosa.resample(audio, orig_sr=int(from_rate), target_sr=int(to_rate), res_type=RESAMPLER).astype(
        np.float32)


def front_end(audio: np.ndarray, rate: int, logmel: Any, pitch_tracker: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """What a recogniser reads of mono ``audio [time]`` at ``rate`` Hz: its log-mel
    ``features [frames, n_mels]`` (:class:`speechexp.data.features.LogMel`, at that feature's
    rate) and, with a :class:`speechexp.models.pitch.PitchTracker`, the frames' ``pitch
    [frames, 2]`` (else ``None``)."""
    audio = resample(audio, int(rate), logmel.sample_rate)
    return logmel(audio), None if pitch_tracker is None else pitch_tracker.track(audio)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio [..., time]`` cut or zero-padded at the end to ``length`` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read ``path`` as mono float32 ``[time]`` and its sample rate.

    soundfile reads WAV, FLAC, OGG and the other libsndfile formats (MP3 with libsndfile
    1.1 or newer); anything else is tried with librosa (audioread/ffmpeg where installed).

    Raises:
        SpeechexpError: naming the file, when it is missing, unreadable, corrupt or empty.
    """
    import soundfile as sf  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise SpeechexpError(f"Audio file {path} does not exist; pass an existing file.")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    except Exception as soundfile_error:  # noqa: BLE001 - soundfile raises several types for bad files
        try:
            import librosa  # noqa: PLC0415

            with warnings.catch_warnings():  # its fallback's deprecation notes say nothing about the file
                warnings.simplefilter("ignore")
                audio, rate = librosa.load(path, sr=None, mono=True)
        except Exception:  # noqa: BLE001 - audioread raises its own types
            reason = str(soundfile_error).strip().splitlines()[0] if str(soundfile_error).strip() else \
                type(soundfile_error).__name__
            raise SpeechexpError(f"Audio file {path} is corrupt or in a format neither soundfile nor librosa "
                                 f"reads ({reason}); convert it to WAV or FLAC.") from None
    if audio.size == 0:
        raise SpeechexpError(f"Audio file {path} has no samples; remove it or pass another file.")
    return to_mono(audio, str(path)), int(rate)
