"""The Festival speech synthesis system (Debian ``festival`` and its voice packages).

Voices: ``kal`` and ``ked`` (diphone voices of two American English speakers:
``festvox-kallpc16k``, ``festvox-kdlpc16k``) and ``slt`` (an HTS voice of CMU ARCTIC's slt:
``festvox-us-slt-hts``); with ``make voices NONFREE=1`` (Debian contrib and non-free) also
the diphone voice ``rab`` and the MBROLA databases ``en1``, ``us1``, ``us2``, ``us3``, whose
prosody festival computes as for its own diphone voices. Rate through ``Duration_Stretch``
(diphone voices) or the HTS engine's ``-r`` speed; pitch and range through the diphone voices' linear-regression
intonation targets (the HTS voice keeps its own: its ``-fm`` shift has no effect here).

One ``festival --pipe`` process per Python process serves every request: starting
``text2wave`` per sentence costs 0.45 s, a request to the running process about 0.06 s
(the same samples).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import soundfile as sf

from speechexp.data.tts import Rendered, Style

# voice -> (Scheme voice function, folder of its package, F0 (mean, std) targets or None)
VOICES: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    "kal": ("voice_kal_diphone", "english/kal_diphone", (105.0, 14.0)),
    "ked": ("voice_ked_diphone", "english/ked_diphone", (105.0, 14.0)),
    "slt": ("voice_cmu_us_slt_arctic_hts", "us/cmu_us_slt_arctic_hts", None),
    # Debian contrib / non-free (`make voices NONFREE=1`): a British diphone voice and the four
    # English MBROLA diphone databases (festival's prosody, MBROLA's concatenation); F0 targets
    # near each voice's own median F0 (librosa.pyin on one sentence as shipped)
    "rab": ("voice_rab_diphone", "english/rab_diphone", (105.0, 14.0)),
    "en1": ("voice_en1_mbrola", "english/en1_mbrola", (113.0, 14.0)),
    "us1": ("voice_us1_mbrola", "english/us1_mbrola", (168.0, 22.0)),
    "us2": ("voice_us2_mbrola", "english/us2_mbrola", (92.0, 12.0)),
    "us3": ("voice_us3_mbrola", "english/us3_mbrola", (106.0, 14.0)),
}
# the Debian package of each voice; those outside main need the contrib and non-free components
PACKAGES = {"kal": "festvox-kallpc16k", "ked": "festvox-kdlpc16k", "slt": "festvox-us-slt-hts",
            "rab": "festvox-rablpc16k", "en1": "festvox-en1", "us1": "festvox-us1", "us2": "festvox-us2",
            "us3": "festvox-us3"}
NONFREE = ("rab", "en1", "us1", "us2", "us3")
VOICE_ROOT = Path("/usr/share/festival/voices")
DONE = "SPEECHEXP-DONE"


def available(voice: str = "") -> bool:
    if shutil.which("festival") is None:
        return False
    return not voice or (VOICE_ROOT / VOICES[voice][1]).is_dir()


def apt_packages(voice: str) -> list[str]:
    """The Debian packages that install ``voice`` (from contrib and non-free for :data:`NONFREE`)."""
    return ["festival", PACKAGES[voice]]


def pitch_control(voice: str) -> bool:
    return VOICES[voice][2] is not None


class _Server:
    """A ``festival --pipe`` child: Scheme in on stdin, a marker line out when done."""

    def __init__(self) -> None:
        line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []  # else the marker waits in a buffer
        self.process = subprocess.Popen([*line_buffered, "festival", "--pipe"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.pid = os.getpid()

    def run(self, scheme: str) -> str:
        self.process.stdin.write(f'(begin {scheme} (print "{DONE}"))\n')
        self.process.stdin.flush()
        said = []
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"festival stopped: {''.join(said)[-300:]}")
            if DONE in line:
                return "".join(said)
            said.append(line)


_server: _Server | None = None
_lock = threading.Lock()


def _running_server() -> _Server:
    global _server
    if _server is None or _server.pid != os.getpid() or _server.process.poll() is not None:
        _server = _Server()  # a forked worker starts its own
    return _server


def synthesize(text: str, voice: str, style: Style) -> Rendered:
    function, _folder, f0 = VOICES[voice]
    setup = [f"({function})", f"(Parameter.set 'Duration_Stretch {1.0 / style.rate:.4f})"]
    if function.endswith("_hts"):  # the HTS engine ignores Duration_Stretch
        setup.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {style.rate:.4f}))))')
    if f0 is not None:
        setup.append(
            f"(set! int_lr_params '((target_f0_mean {f0[0] * style.pitch:.2f}) "
            f"(target_f0_std {f0[1] * style.pitch_range:.2f}) (model_f0_mean 170) (model_f0_std 34)))"
        )
    spoken = " ".join(text.replace("\\", " ").replace('"', " ").split())
    with _lock, tempfile.TemporaryDirectory(prefix="speechexp-tts-") as folder:
        wav = Path(folder) / "out.wav"
        said = _running_server().run(
            f"{' '.join(setup)} (utt.save.wave (utt.synth (Utterance Text \"{spoken}\")) \"{wav}\" 'riff)")
        if not wav.is_file():
            raise RuntimeError(f"festival wrote no audio for {text!r}: {said.strip()[-300:]}")
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    return Rendered(audio.mean(axis=1), int(rate), native_pitch=f0 is not None)
