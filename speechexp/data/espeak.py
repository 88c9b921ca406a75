"""In-process espeak-ng speech synthesis through ctypes (library from ``espeakng-loader``).

espeak-ng keeps one global C state per process, so :func:`synthesize` serialises calls
with a lock and the library is initialised once, in synchronous mode: samples come back
through a callback into memory, nothing is played.
"""

from __future__ import annotations

import ctypes
import logging
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from speechexp.errors import SpeechexpError

log = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT and espeak_PARAMETER values from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
_PHONEME_SEPARATOR = ord("_") << 8  # espeak_TextToPhonemes' phonememode: ASCII names, "_" between phonemes

# English base voices shipped with espeak-ng (language files under lang/gmw/)
ENGLISH_BASE_VOICES = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)

# Variants that sound like a (synthetic) human speaker. Novelty and robot voices are left
# out, and so are the Klatt-synthesiser variants (adam, benjamin, caleb, david, edward...),
# whose noise state carries over between utterances (their audio depends on call order).
HUMAN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Andy", "Annie", "antonio", "aunty", "belinda", "boris",
    "Denis", "Gene", "grandma", "grandpa", "gustave", "Hugo",
    "ian", "iven", "iven2", "john", "kaukovalta", "Lee", "linda", "marcelo", "max",
    "Michael", "michel", "miguel", "norbert", "paul", "pedro", "quincy", "rob", "robert",
    "sandro", "shelby", "steph", "travis",
)


def _elf_symbols(path: str | Path, wanted: tuple[str, ...], kinds: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """``name -> (offset, size)`` of symbols of type ``kinds`` (1 object, 2 function) in an
    ELF64 little-endian file's ``.symtab`` whose names start with one of ``wanted``;
    empty when there is no symbol table (a stripped library)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {}
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    found: dict[str, tuple[int, int]] = {}
    for _name, sh_type, _f, _a, offset, size, link, _i, _al, entsize in sections:
        if sh_type != 2 or not entsize:  # SHT_SYMTAB
            continue
        str_offset = sections[link][4]
        for k in range(size // entsize):
            st_name, info, _other, shndx, st_value, st_size = struct.unpack_from(
                "<IBBHQQ", data, offset + k * entsize)
            if not shndx or (info & 0xF) not in kinds:
                continue
            end = data.index(b"\0", str_offset + st_name)
            name = data[str_offset + st_name:end].decode("ascii", "replace")
            if name.startswith(wanted) and name not in found:
                found[name] = (st_value, st_size)
    return found


# Static variables of espeak-ng's wave generator that carry over between utterances
# (pitch-flutter phase, glottal cycle counters, gain, echo), so that without a reset the
# audio of an utterance depends on what was synthesised before it.
_CARRY_OVER_STATE = (
    "Flutter_ix", "cycle_count", "h_switch_sign", "agc", "amplitude2", "glotlast",
    "wavephase", "echo_buf", "espeak_rand_state",
)


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class Prosody:
    """espeak-ng prosody parameters (absolute values in espeak's units).

    rate: words per minute (80-450, default 175); pitch and pitch_range: 0-100
    (default 50, scaled by each voice's own base pitch and range); volume: 0-200
    (default 100); word_gap: pause between words in units of 10 ms.
    """

    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100
    word_gap: int = 0


class _Engine:
    """The process-wide espeak-ng instance (created on first use)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:  # pragma: no cover - it is a dependency
            raise SpeechexpError(
                "Package espeakng-loader is not installed; run `make install` to install it."
            ) from None
        self.data_path = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
            self._set_seed.restype = None
        self._fresh_state = self._snapshot_state(lib, espeakng_loader.get_library_path())
        try:  # the Klatt voices draw noise from the C library's rand()
            self._srand = ctypes.CDLL(None).srand
            self._srand.argtypes = [ctypes.c_uint]
        except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
            self._srand = None
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), 0
        )
        if rate <= 0:
            raise SpeechexpError(
                f"espeak-ng could not load its voice data from {self.data_path}; "
                "reinstall espeakng-loader."
            )
        self.lib = lib
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._on_samples)  # keep a reference alive
        lib.espeak_SetSynthCallback(self._callback)

    @staticmethod
    def _snapshot_state(lib: ctypes.CDLL, path: str) -> list[tuple[int, bytes]]:
        """``(address, bytes)`` of the fresh :data:`_CARRY_OVER_STATE` variables, to be
        restored before each utterance; empty if the library has no symbol table."""
        try:
            symbols = _elf_symbols(path, _CARRY_OVER_STATE, kinds=(1,))
            anchor = _elf_symbols(path, ("espeak_Synth",), kinds=(2,))["espeak_Synth"][0]
            base = ctypes.cast(lib.espeak_Synth, ctypes.c_void_p).value - anchor
        except (OSError, KeyError, ValueError, struct.error):
            symbols, base = {}, 0
        if not any(name.startswith("Flutter_ix") for name in symbols):
            log.warning("espeak-ng state variables not found; synthesised audio may depend on call order")
            return []
        return [(base + off, ctypes.string_at(base + off, size)) for off, size in symbols.values() if size]

    def _on_samples(self, wav, num_samples, _events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def synth(self, text: str, voice: str, prosody: Prosody, seed: int) -> np.ndarray:
        # Restoring the generator state, selecting the voice every time and reseeding the
        # noise generator make the output depend only on the arguments, not on history.
        for address, saved in self._fresh_state:
            ctypes.memmove(address, saved, len(saved))
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechexpError(
                f"espeak-ng has no voice named {voice!r}; pick one of the voices "
                "listed by speechexp.data.espeak.available_variants()."
            )
        if self._set_seed is not None:
            self._set_seed(int(seed))
        if self._srand is not None:
            self._srand(int(seed) & 0xFFFFFFFF)
        for param, value in (
            (_PARAM_RATE, prosody.rate), (_PARAM_VOLUME, prosody.volume),
            (_PARAM_PITCH, prosody.pitch), (_PARAM_RANGE, prosody.pitch_range),
            (_PARAM_WORDGAP, prosody.word_gap),
        ):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for text {text!r}")
        self.lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0

    def phonemes(self, text: str, voice: str) -> str:
        """espeak-ng's ASCII phonemes of ``text`` in ``voice``'s language: phonemes joined by
        ``_`` (stress marks kept), words by spaces."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechexpError(f"espeak-ng has no voice named {voice!r}.")
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        cursor = ctypes.c_void_p(ctypes.addressof(buffer))
        clauses = []
        while cursor.value:  # one clause per call; the cursor ends NULL
            out = self.lib.espeak_TextToPhonemes(ctypes.byref(cursor), _CHARS_UTF8, _PHONEME_SEPARATOR)
            clauses.append((out or b"").decode("utf-8", errors="replace"))
        return " ".join(c for c in clauses if c)


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def sample_rate() -> int:
    """The native sample rate of espeak-ng output in Hz (22050)."""
    with _lock:
        return _engine().sample_rate


def synthesize(text: str, voice: str, prosody: Prosody | None = None, seed: int = 0) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng voice ``voice`` (e.g. ``"en-us+m3"``).

    Returns mono float32 audio ``[time]`` in [-1, 1] at :func:`sample_rate` Hz; the same
    arguments give the same samples, whatever the process synthesised before, as long as it
    used no Klatt-synthesiser variant (``klatt``, ``adam``, ``edward``...; not in
    :data:`HUMAN_VARIANTS`): their state carries over into later utterances, other voices'
    too. Thread-safe but serialised: espeak-ng has one global state per process.
    """
    with _lock:
        return _engine().synth(text, voice, prosody or Prosody(), seed)


def phonemes(text: str, voice: str = "en-us") -> str:
    """espeak-ng's phonemes of ``text`` (ASCII names joined by ``_``, words by spaces), e.g.
    ``"cow"`` → ``"k_'aU"``. Serialised like :func:`synthesize`."""
    with _lock:
        return _engine().phonemes(text, voice)


def available_variants() -> list[str]:
    """Names of the voice variants shipped with espeak-ng (``voices/!v``), sorted."""
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def variant_gender(variant: str) -> str:
    """The ``gender`` line of a variant file ('male', 'female' or '' when unstated)."""
    import espeakng_loader

    path = Path(espeakng_loader.get_data_path()) / "voices" / "!v" / variant
    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "gender":
                return parts[1].lower()
    except OSError:
        pass
    return ""


def voice_names(base_voices: list[str] | tuple[str, ...], variants: list[str] | tuple[str, ...]) -> list[str]:
    """All ``base+variant`` voice names (base-major order): ``len(base) * len(variants)``."""
    return [f"{base}+{variant}" for base in base_voices for variant in variants]
