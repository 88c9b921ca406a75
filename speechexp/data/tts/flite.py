"""CMU Flite (Debian ``flite``): four built-in voices of real speakers (CMU ARCTIC and Kal).

Rate through ``duration_stretch``; pitch and range through ``int_f0_target_mean`` /
``int_f0_target_stddev`` on the voices that honour them (measured with pyin: kal16, awb,
slt move their F0, rms does not).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile as sf

from speechexp.data.tts import Rendered, Style

# voice -> (F0 mean Hz, F0 standard deviation Hz) targets as shipped, or None: no F0 control
VOICES: dict[str, tuple[float, float] | None] = {
    "kal16": (100.0, 15.0), "awb": (130.0, 18.0), "slt": (170.0, 22.0), "rms": None,
}


def available(voice: str = "") -> bool:
    return shutil.which("flite") is not None


def apt_packages(voice: str) -> list[str]:
    """The Debian packages that install ``voice`` (every voice is built into flite)."""
    return ["flite"]


def pitch_control(voice: str) -> bool:
    return VOICES[voice] is not None


def synthesize(text: str, voice: str, style: Style) -> Rendered:
    settings = [f"duration_stretch={1.0 / style.rate:.4f}"]
    f0 = VOICES[voice]
    if f0 is not None:
        settings += [f"int_f0_target_mean={f0[0] * style.pitch:.2f}",
                     f"int_f0_target_stddev={f0[1] * style.pitch_range:.2f}"]
    with tempfile.TemporaryDirectory(prefix="speechexp-tts-") as folder:
        wav = Path(folder) / "out.wav"
        command = ["flite", "-voice", voice, "-t", text, "-o", str(wav)]
        for setting in settings:
            command += ["--setf", setting]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"flite failed ({done.returncode}): {done.stderr.strip()[:300]}")
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    return Rendered(audio.mean(axis=1), int(rate), native_pitch=f0 is not None)
