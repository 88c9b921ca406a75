"""Running a command-line speech engine into a temporary WAV file."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


def run_to_wav(command: list[str]) -> tuple[np.ndarray, int]:
    """Run ``command`` with ``{wav}`` in its arguments replaced by a temporary file's path;
    return that file's ``(audio [time] float32, sample_rate)``."""
    with tempfile.TemporaryDirectory(prefix="speechexp-tts-") as folder:
        wav = str(Path(folder) / "out.wav")
        args = [wav if a == "{wav}" else a for a in command]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not Path(wav).is_file():
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)
