"""Atomic file writing and checked audio reading.

Every file the program writes goes to a temporary sibling first and is renamed into
place, so an interrupted run never leaves a half-written WAV, CSV or JSON behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import soundfile as sf

from speechexp.errors import SpeechexpError


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv_atomic(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]
) -> Path:
    """Write dict rows as CSV with a header to ``path`` atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return write_text_atomic(path, buffer.getvalue())


def write_wav_atomic(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio ``(time,)`` as 16-bit PCM WAV atomically.

    Values are clipped to [-1, 1] first so that loud estimates do not wrap around.
    """
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, int(sample_rate), subtype="PCM_16", format="WAV")
    return Path(path)


def read_wav(path: str | os.PathLike, expected_sample_rate: int | None = None) -> np.ndarray:
    """Read a mono WAV as float32 ``(time,)``; multi-channel files are averaged.

    Raises:
        SpeechexpError: the file is missing, unreadable or corrupt, or its sample rate
            differs from ``expected_sample_rate``; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechexpError(f"Audio file {path} does not exist; re-run prepare or fix metadata.csv.")
    try:
        audio, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad files
        raise SpeechexpError(
            f"Audio file {path} is corrupt or unreadable ({exc}); delete or replace it."
        ) from None
    if expected_sample_rate is not None and sample_rate != expected_sample_rate:
        raise SpeechexpError(
            f"Audio file {path} has sample rate {sample_rate} Hz but {expected_sample_rate} Hz "
            "is expected; resample it or set the dataset's sample rate to match."
        )
    return audio.mean(axis=1)
