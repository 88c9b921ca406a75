"""SVOX Pico (Debian non-free ``libttspico-utils``): the US and British English voices of
Android's original speech engine, each an HMM voice trained on recordings of one woman.

Rate and pitch through Pico's own ``<speed>`` and ``<pitch>`` markup (whole percent, kept
within 20-500 and 50-200 here). Pico has no control of the pitch *range*, so a style's
``pitch_range`` is not rendered by this engine (emotions still read at UAR 0.99 from its
audio: docs/results.md#real-voices).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import soundfile as sf

from speechexp.data.tts import Rendered, Style

VOICES: dict[str, str] = {"us": "en-US", "gb": "en-GB"}  # voice -> pico2wave's language
NONFREE = ("us", "gb")  # Debian non-free: the voice data ships without its source
LANG_ROOT = Path("/usr/share/pico/lang")


def available(voice: str = "") -> bool:
    if shutil.which("pico2wave") is None:
        return False
    return not voice or any(LANG_ROOT.glob(f"{VOICES[voice]}_*_sg.bin"))


def apt_packages(voice: str) -> list[str]:
    """The Debian packages that install ``voice`` (both voices are in ``libttspico-data``)."""
    return ["libttspico-utils"]


def pitch_control(voice: str) -> bool:
    return True


def synthesize(text: str, voice: str, style: Style) -> Rendered:
    speed = int(round(min(max(100 * style.rate, 20), 500)))
    pitch = int(round(min(max(100 * style.pitch, 50), 200)))
    spoken = " ".join(text.replace("<", " ").replace(">", " ").replace("&", " and ").split())
    markup = f"<speed level='{speed}'><pitch level='{pitch}'>{spoken}</pitch></speed>"
    with tempfile.TemporaryDirectory(prefix="speechexp-tts-") as folder:
        wav = Path(folder) / "out.wav"  # pico2wave insists on a .wav name
        done = subprocess.run(["pico2wave", "-l", VOICES[voice], "-w", str(wav), markup],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"pico2wave failed ({done.returncode}): {done.stderr.strip()[:300]}")
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    return Rendered(audio.mean(axis=1), int(rate), native_pitch=True)
