"""CMU Flite (Debian ``flite``): four built-in voices of real speakers (CMU ARCTIC and Kal).

Rate through ``duration_stretch``; pitch and range through ``int_f0_target_mean`` /
``int_f0_target_stddev`` on the voices that honour them (measured with pyin: kal16, awb,
slt move their F0, rms does not).
"""

from __future__ import annotations

import shutil

from speechexp.data.tts import Rendered, Style
from speechexp.data.tts._subprocess import run_to_wav

INSTALL = "apt-get install flite"
# voice -> (F0 mean Hz, F0 standard deviation Hz) targets as shipped, or None: no F0 control
VOICES: dict[str, tuple[float, float] | None] = {
    "kal16": (100.0, 15.0), "awb": (130.0, 18.0), "slt": (170.0, 22.0), "rms": None,
}


def available(voice: str = "") -> bool:
    return shutil.which("flite") is not None


def synthesize(text: str, voice: str, style: Style) -> Rendered:
    command = ["flite", "-voice", voice, "-t", text, "-o", "{wav}",
               "--setf", f"duration_stretch={1.0 / style.rate:.4f}"]
    f0 = VOICES[voice]
    if f0 is not None:
        command += ["--setf", f"int_f0_target_mean={f0[0] * style.pitch:.2f}",
                    "--setf", f"int_f0_target_stddev={f0[1] * style.pitch_range:.2f}"]
    audio, rate = run_to_wav(command)
    return Rendered(audio, rate, native_pitch=f0 is not None)
