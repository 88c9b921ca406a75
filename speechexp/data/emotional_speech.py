"""Offline synthetic emotional speech: espeak-ng voices with emotion rendered as prosody.

Each speaker is an espeak-ng base voice plus a voice variant (e.g. ``en-us+m3``) with its
own random baseline (rate, pitch, pitch range, loudness). Each emotion moves prosody
*relative to that baseline* (see :data:`EMOTION_PROSODY`) and every utterance adds random
jitter around the emotion's target, so the classes overlap somewhat. A spectral tilt
(brighter for angry/happy, darker for sad) is applied after synthesis. Splits are
speaker- and sentence-disjoint: val and test hold voices and sentences unseen in train.

Beyond espeak (the ``dataset/voices`` config group): ``voices`` adds offline engines built
from real speakers (:mod:`speechexp.data.tts`), each heard as ``speakers_per_voice``
pseudo-speakers with their own vocal-tract warp, pitch and rate; ``val_voices`` and
``test_voices`` hold whole voices out (leave-one-voice-out, the offline stand-in for
people). ``general_text`` is the share of utterances that say general English word
sequences (:mod:`speechexp.data.general_text`; a ``general_sentences`` share of them natural
sentences) instead of grammar sentences, and
``degrade`` the share of training utterances sent through a drawn room, noise or phone
channel (:mod:`speechexp.data.channel`). ``domain_text`` (or ``domain_file``) lists the
phrases a user's recordings will say: a ``domain_share`` of the training utterances say one
of them instead of their sentence, so that every voice teaches the recogniser those words.
All of them off gives the espeak corpus as before.
"""

from __future__ import annotations

import csv
import logging
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import librosa
import numpy as np
from scipy.signal import lfilter

from speechexp.data import channel, espeak, tts
from speechexp.data.emotion_splits import SPLITS, check_fractions, split_groups
from speechexp.data.general_text import natural_sentences, usage_examples, word_list, word_sequences
from speechexp.data.preparer import METADATA_FILE, DatasetPreparer
from speechexp.data.progress import progress
from speechexp.data.sentences import sentence_bank
from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic, write_json_atomic, write_wav_atomic

log = logging.getLogger(__name__)

# Offsets relative to a speaker's baseline: rate and volume are multipliers, pitch and
# pitch_range are added on espeak's 0-100 scale, word_gap adds pauses (10 ms units),
# tilt in [-1, 1] brightens (>0) or darkens (<0) the spectrum.
EMOTION_PROSODY: dict[str, dict[str, float]] = {
    "neutral":   {"rate": 1.00, "pitch": 0,   "pitch_range": 0,   "volume": 1.00, "word_gap": 0, "tilt": 0.0},
    "happy":     {"rate": 1.08, "pitch": 12,  "pitch_range": 25,  "volume": 1.10, "word_gap": 0, "tilt": 0.3},
    "sad":       {"rate": 0.80, "pitch": -10, "pitch_range": -22, "volume": 0.70, "word_gap": 2, "tilt": -0.5},
    "angry":     {"rate": 1.12, "pitch": 4,   "pitch_range": 12,  "volume": 1.40, "word_gap": 0, "tilt": 0.6},
    "fearful":   {"rate": 1.22, "pitch": 18,  "pitch_range": -12, "volume": 0.85, "word_gap": 0, "tilt": 0.1},
    "disgust":   {"rate": 0.88, "pitch": -6,  "pitch_range": 8,   "volume": 0.95, "word_gap": 1, "tilt": -0.2},
    "surprised": {"rate": 1.00, "pitch": 22,  "pitch_range": 35,  "volume": 1.15, "word_gap": 0, "tilt": 0.2},
    "calm":      {"rate": 0.90, "pitch": -4,  "pitch_range": -10, "volume": 0.85, "word_gap": 0, "tilt": -0.2},
}
# Standard deviations at jitter=1 (per utterance) and speaker_spread=1 (per speaker).
UTTERANCE_JITTER = {"rate": 0.05, "pitch": 4.0, "pitch_range": 7.0, "volume": 0.08, "tilt": 0.15}
SPEAKER_SPREAD = {"rate": 0.07, "pitch": 6.0, "pitch_range": 6.0, "volume": 0.08}
DEFAULT_EMOTIONS = ["neutral", "happy", "sad", "angry", "fearful"]
METADATA_COLUMNS = [
    "path", "speaker", "emotion", "text", "duration", "split", "sample_rate", "voice",
    "variant", "gender", "sentence_id", "rate", "pitch", "pitch_range", "volume",
    "word_gap", "tilt", "source", "warp", "channel",
]
# What each natural voice's speaker is (for the gender column)
NATURAL_GENDER = {"flite:kal16": "male", "flite:awb": "male", "flite:rms": "male", "flite:slt": "female",
                  "festival:kal": "male", "festival:ked": "male", "festival:slt": "female", "piper:joe": "male",
                  "festival:rab": "male", "festival:en1": "male", "festival:us1": "female", "festival:us2": "male",
                  "festival:us3": "male", "pico:us": "female", "pico:gb": "female"}
# Every natural engine's output is brought to this RMS level (dBFS) before the utterance's
# volume and tilt: engines differ by up to 10 dB, and a loud one (festival ked, Piper) would
# otherwise reach full scale at volume 1.4, be scaled back, and lose angry's loudness.
NATURAL_LEVEL_DBFS = -28.0
# Fields that add to the espeak corpus; at these values the corpus (and its fingerprint) is
# the espeak-only one.
EXTENSION_DEFAULTS: dict[str, Any] = {
    "voices": None, "extra_voices": None, "speakers_per_voice": 0, "val_voices": None, "test_voices": None,
    "warp_spread": 0.06, "raised_fraction": 1 / 3,
    "general_text": 0.0, "general_vocabulary": 20000, "general_sequences": 0, "general_max_words": 6,
    "general_sentences": 0.0, "degrade": 0.0, "degrade_snr_db": [5.0, 25.0],
    "degrade_rt60_s": [0.15, 0.6], "domain_text": None, "domain_file": None, "domain_share": 0.1,
    "silence_s": 0.0, "speaker_rates": None,
}


def read_phrases(path: Path) -> list[str]:
    """The phrases of ``path``: a CSV's ``text`` column (a labelled folder's ``transcripts.csv``)
    or, for any other file, its non-empty lines."""
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        raise SpeechexpError(f"dataset.preparer.domain_file={path} is missing or not UTF-8 text; give a file with "
                             "one phrase per line or a CSV with a text column.") from None
    if path.suffix.lower() != ".csv":
        return [line.strip() for line in content.splitlines() if line.strip()]
    rows = list(csv.DictReader(content.splitlines()))
    if not rows or "text" not in rows[0]:
        raise SpeechexpError(f"dataset.preparer.domain_file={path} has no text column; add a header with text.")
    return [row["text"] for row in rows if (row["text"] or "").strip()]


def available_cores() -> int:
    """The cores this process may run on (its affinity, e.g. a SLURM allocation)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def apply_tilt(audio: np.ndarray, tilt: float) -> np.ndarray:
    """Brighten (``tilt > 0``) or darken (``tilt < 0``) ``audio [time]``; keeps RMS."""
    if abs(tilt) < 1e-6 or audio.size == 0:
        return audio
    if tilt > 0:
        out = audio + 1.5 * tilt * np.diff(audio, prepend=audio[:1])
    else:
        a = min(0.95, 0.7 * -tilt)
        out = lfilter([1.0 - a], [1.0, -a], audio)
    rms_in = float(np.sqrt(np.mean(audio**2)))
    rms_out = float(np.sqrt(np.mean(out**2))) + 1e-12
    return (out * (rms_in / rms_out)).astype(np.float32)


@dataclass
class EmotionalSpeechPreparer(DatasetPreparer):
    """Synthesise an emotional speech corpus with espeak-ng (no download).

    Writes ``wavs/<speaker>/<utt>.wav`` (mono, ``sample_rate`` Hz, 16-bit), ``metadata.csv``
    (:data:`METADATA_COLUMNS`), ``sentences.csv`` and ``summary.json``. Total utterances
    are ``num_speakers * utterances_per_speaker``; each speaker gets (near) equal counts
    of every emotion. ``prosody`` overrides entries of :data:`EMOTION_PROSODY` per emotion.
    ``num_workers`` processes synthesise in parallel (None: every core); each utterance's
    audio depends only on its plan and index, so the files are the same for any count.
    """

    name: str = "emotional_speech"
    emotions: list[str] = field(default_factory=lambda: list(DEFAULT_EMOTIONS))
    num_speakers: int = 380
    utterances_per_speaker: int = 10
    num_sentences: int = 2000
    val_fraction: float = 0.1
    test_fraction: float = 0.15
    sample_rate: int = 16000
    base_voices: list[str] | None = None
    variants: list[str] | None = None
    emotion_strength: float = 1.0
    jitter: float = 0.5
    speaker_spread: float = 1.0
    snr_db: float | None = 35.0
    prosody: dict[str, dict[str, float]] | None = None
    seed: int = 0
    num_workers: int | None = None
    voices: list[str] | None = None
    extra_voices: list[str] | None = None
    speakers_per_voice: int = 0
    val_voices: list[str] | None = None
    test_voices: list[str] | None = None
    warp_spread: float = 0.06
    raised_fraction: float = 1 / 3
    general_text: float = 0.0
    general_vocabulary: int = 20000
    general_sequences: int = 0
    general_max_words: int = 6
    general_sentences: float = 0.0
    degrade: float = 0.0
    degrade_snr_db: list[float] = field(default_factory=lambda: [5.0, 25.0])
    degrade_rt60_s: list[float] = field(default_factory=lambda: [0.15, 0.6])
    domain_text: list[str] | None = None
    domain_file: str | None = None
    domain_share: float = 0.1
    silence_s: float = 0.0
    speaker_rates: list[float] | None = None

    def __post_init__(self) -> None:
        # checked when built, so that a run's pre-flight refuses them before a run dir exists
        if self.num_speakers < 3 or self.utterances_per_speaker < 1 or self.num_sentences < 3:
            raise SpeechexpError(
                "dataset.preparer needs num_speakers >= 3, num_sentences >= 3 and "
                "utterances_per_speaker >= 1; raise them."
            )
        if not 0 <= self.general_sentences <= 1:
            raise SpeechexpError(f"dataset.preparer.general_sentences={self.general_sentences} is not a share; give "
                                 "the share of general texts that are natural sentences, 0 to 1.")
        check_fractions(self.val_fraction, self.test_fraction)
        if not 0.0 <= self.silence_s <= 5.0:
            raise SpeechexpError(f"dataset.preparer.silence_s={self.silence_s} is out of range; give the longest "
                                 "silence before and after each utterance in seconds, 0 to 5 (0: none).")
        if self.speaker_rates is not None:
            rates = list(self.speaker_rates)
            if len(rates) != 2 or not 0.3 <= rates[0] <= rates[1] <= 3.0:
                raise SpeechexpError(f"dataset.preparer.speaker_rates={rates} is not a range of speaking rates; give "
                                     "[slowest, fastest] as factors of each engine's normal rate, 0.3 to 3 (e.g. "
                                     "[0.55, 1.1]), or null for 1 +- 7 %.")
            self.speaker_rates = [float(r) for r in rates]
        # A voices option that adds to another (dataset/voices=all over natural) names only its
        # own voices: Hydra replaces lists, it cannot append. They join ``voices`` here, so the
        # corpus (and its fingerprint) is the one the whole list would give.
        if self.extra_voices:
            self.voices = list(self.voices or []) + [v for v in self.extra_voices if v not in (self.voices or [])]
            self.extra_voices = None
        # The file's phrases join domain_text here, so the fingerprint holds the phrases, not a path.
        if self.domain_file:
            self.domain_text = list(self.domain_text or []) + read_phrases(Path(self.domain_file))
            self.domain_file = None
        if self.domain_text is not None:
            self.domain_text = list(dict.fromkeys(" ".join(str(t).split()) for t in self.domain_text if str(t).strip()))
            if not self.domain_text or not 0 < self.domain_share <= 1:
                raise SpeechexpError(
                    f"dataset.preparer.domain_text needs at least one phrase and a domain_share in (0, 1] "
                    f"(got {len(self.domain_text)} phrases, domain_share={self.domain_share}); fix them or set "
                    "domain_text=null.")

    def fingerprint_fields(self) -> dict[str, Any]:
        """The fields plus the resolved voices and prosody targets, so that changing the
        code's defaults (presets, variant list) also gives a new dataset folder; not
        ``num_workers``, which changes how fast, not what."""
        fields = super().fingerprint_fields()
        fields.pop("num_workers")
        if not self.natural_voices():  # the espeak-only corpus keeps its folder name
            for key in ("voices", "speakers_per_voice", "val_voices", "test_voices", "warp_spread", "raised_fraction"):
                fields.pop(key)
        if not self.domain_text:  # a share of no phrases changes nothing
            fields.pop("domain_share")
        for key, default in EXTENSION_DEFAULTS.items():
            if key in fields and fields[key] == default:
                fields.pop(key)
        fields["resolved"] = {"voices": self.espeak_voices(), "targets": self.emotion_targets(), "format": 1}
        if self.natural_voices():
            fields["resolved"]["natural_level_dbfs"] = NATURAL_LEVEL_DBFS
        return fields

    # ------------------------------------------------------------------ planning
    def emotion_targets(self) -> dict[str, dict[str, float]]:
        """The prosody offsets of each configured emotion (after overrides)."""
        table = {k: dict(v) for k, v in EMOTION_PROSODY.items()}
        for emotion, override in (self.prosody or {}).items():
            table.setdefault(emotion, dict(EMOTION_PROSODY["neutral"])).update(override)
        unknown = [e for e in self.emotions if e not in table]
        if unknown:
            raise SpeechexpError(
                f"Emotion(s) {unknown} have no prosody preset; use some of {sorted(table)} "
                "or add them under dataset.preparer.prosody."
            )
        return {e: table[e] for e in self.emotions}

    def espeak_voices(self) -> list[tuple[str, str]]:
        """The chosen ``(base_voice, variant)`` pairs, ``num_speakers`` of them, seeded."""
        bases = self.base_voices or list(espeak.ENGLISH_BASE_VOICES)
        variants = self.variants or list(espeak.HUMAN_VARIANTS)
        pool = [(b, v) for b in bases for v in variants]
        if self.num_speakers > len(pool):
            raise SpeechexpError(
                f"dataset.preparer.num_speakers={self.num_speakers} exceeds the {len(pool)} "
                "available voices; lower it or add base_voices/variants."
            )
        rng = random.Random(self.seed)
        return sorted(rng.sample(pool, self.num_speakers))

    def natural_voices(self) -> list[str]:
        """The engine voices (``engine:voice``) that add pseudo-speakers, checked by name."""
        names = list(self.voices or []) if self.speakers_per_voice > 0 else []
        for name in names + list(self.val_voices or []) + list(self.test_voices or []):
            tts.split_voice(name)
        held_out = [v for v in list(self.val_voices or []) + list(self.test_voices or []) if v not in names]
        if held_out:
            raise SpeechexpError(
                f"Held-out voice(s) {held_out} are not in dataset.preparer.voices; add them there or drop them."
            )
        return names

    def check_requirements(self) -> None:
        """One sentence with the install command when a configured engine (or the word
        list of ``general_text``) is missing."""
        tts.check_installed(self.natural_voices())
        if self.general_text > 0:
            word_list(self.general_vocabulary)
            if self.general_sentences > 0:
                usage_examples()

    def texts(self) -> tuple[list[str], list[str]]:
        """The grammar sentences and the general texts (:meth:`general_texts`, word sequences
        then natural sentences); sentence ids number the grammar sentences first."""
        sequences, sentences = self.general_texts()
        return sentence_bank(self.num_sentences, seed=self.seed), sequences + sentences

    def general_texts(self) -> tuple[list[str], list[str]]:
        """The general word sequences and, a ``general_sentences`` share of the general texts,
        the natural sentences (both empty when ``general_text`` is 0)."""
        if self.general_text <= 0:
            return [], []
        count = self.general_sequences or self.num_sentences
        words = len(word_list(self.general_vocabulary)[0])
        if self.general_max_words < 1 or (self.general_max_words == 1 and count > words):
            raise SpeechexpError(
                f"dataset.preparer.general_max_words={self.general_max_words} cannot give {count} distinct "
                f"general sequences from {words} words; raise it (1 to 6 words is the default)."
            )
        sentences = round(count * self.general_sentences)
        sequences = word_sequences(count - sentences, self.general_vocabulary, max_words=self.general_max_words,
                                   seed=self.seed + 7) if count > sentences else []
        return sequences, natural_sentences(sentences, seed=self.seed + 13)

    def text_kinds(self) -> dict[str, str]:
        """Each grammar and general text -> ``"grammar"``, ``"words"`` or ``"sentences"``."""
        sequences, sentences = self.general_texts()
        grammar = sentence_bank(self.num_sentences, seed=self.seed)  # as texts() has it
        return ({text: "grammar" for text in grammar} | {text: "words" for text in sequences}
                | {text: "sentences" for text in sentences})

    def plan(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Utterance plan (no audio): ``(utterances, sentences)`` as lists of dicts."""
        targets = self.emotion_targets()
        grammar, general = self.texts()
        texts = grammar + general
        sentence_split = split_groups(range(len(grammar)), self.val_fraction, self.test_fraction, self.seed + 1)
        sentence_split.update({len(grammar) + i: s for i, s in split_groups(
            range(len(general)), self.val_fraction, self.test_fraction, self.seed + 11).items()})
        voices = self.espeak_voices()
        speaker_split = split_groups(voices, self.val_fraction, self.test_fraction, self.seed + 2)
        normalize = CharTokenizer().normalize
        domain = {normalize(t) for t in self.domain_text or []}

        def pool_of(ids: range, split: str) -> list[int]:  # what training says is never held-out text
            return [i for i in ids if sentence_split[i] == split
                    and (split == "train" or not domain or normalize(texts[i]) not in domain)]

        pools = {s: pool_of(range(len(grammar)), s) for s in SPLITS}
        general_pools = {s: pool_of(range(len(grammar), len(texts)), s) for s in SPLITS}
        domain_text = list(self.domain_text or [])
        domain_ids = list(range(len(texts), len(texts) + len(domain_text)))
        texts += domain_text
        sentence_split.update({i: "train" for i in domain_ids})  # the domain phrases are training text
        sentences = [{"sentence_id": i, "text": t, "split": sentence_split[i]} for i, t in enumerate(texts)]

        rng = np.random.default_rng(self.seed + 3)
        sr, sp = self.speaker_spread, self.emotion_strength
        utterances: list[dict[str, Any]] = []
        for index, (base, variant) in enumerate(voices):
            split = speaker_split[(base, variant)]
            pool = pools[split]
            if not pool:
                raise SpeechexpError(f"No sentences fall in the {split} split; raise dataset.preparer.num_sentences.")
            baseline = {
                "rate": 175.0 * self._speaker_rate(max(0.5, 1 + sr * SPEAKER_SPREAD["rate"] * rng.standard_normal()),
                                                   14, index),
                "pitch": 50.0 + sr * SPEAKER_SPREAD["pitch"] * rng.standard_normal(),
                "pitch_range": 50.0 + sr * SPEAKER_SPREAD["pitch_range"] * rng.standard_normal(),
                "volume": 100.0 * max(0.5, 1 + sr * SPEAKER_SPREAD["volume"] * rng.standard_normal()),
            }
            n = self.utterances_per_speaker
            chosen = self._choose_texts(rng, pool, general_pools[split], n, domain_ids if split == "train" else [])
            offset = index % len(self.emotions)  # rotate so leftovers stay balanced overall
            emotions = [self.emotions[(k + offset) % len(self.emotions)] for k in range(n)]
            rng.shuffle(emotions)
            speaker = f"{base}+{variant}"
            for k, (sid, emotion) in enumerate(zip(chosen, emotions)):
                t = targets[emotion]
                j = self.jitter
                rate = baseline["rate"] * (1 + sp * (t["rate"] - 1)) * (1 + j * UTTERANCE_JITTER["rate"] * rng.standard_normal())
                pitch = baseline["pitch"] + sp * t["pitch"] + j * UTTERANCE_JITTER["pitch"] * rng.standard_normal()
                prange = baseline["pitch_range"] + sp * t["pitch_range"] + j * UTTERANCE_JITTER["pitch_range"] * rng.standard_normal()
                volume = baseline["volume"] * (1 + sp * (t["volume"] - 1)) * (1 + j * UTTERANCE_JITTER["volume"] * rng.standard_normal())
                tilt = sp * t["tilt"] + j * UTTERANCE_JITTER["tilt"] * rng.standard_normal()
                utterances.append({
                    "path": f"wavs/spk{index:03d}/spk{index:03d}_{k:03d}.wav",
                    "speaker": speaker, "emotion": emotion, "text": texts[sid], "split": split,
                    "voice": base, "variant": variant, "sentence_id": sid,
                    "rate": int(np.clip(round(rate), 80, 450)),
                    "pitch": int(np.clip(round(pitch), 0, 100)),
                    "pitch_range": int(np.clip(round(prange), 0, 100)),
                    "volume": int(np.clip(round(volume), 10, 200)),
                    "word_gap": int(max(0, round(sp * t["word_gap"]))),
                    "tilt": round(float(np.clip(tilt, -1, 1)), 3),
                    "source": "espeak", "warp": 1.0,
                })
        utterances += self._plan_natural(rng, texts, pools, general_pools, domain_ids)
        self._plan_channels(utterances)
        return utterances, sentences

    def _choose_texts(self, rng: np.random.Generator, pool: list[int], general_pool: list[int], n: int,
                      domain_pool: list[int]) -> list[int]:
        """``n`` sentence ids from ``pool`` (grammar), each replaced with probability
        ``general_text`` by one from ``general_pool``, then with probability ``domain_share``
        by one from ``domain_pool`` (empty outside training: no draws, the corpus unchanged)."""
        order = rng.permutation(len(pool))
        chosen = [pool[order[k % len(pool)]] for k in range(n)]
        for share, extra in ((self.general_text, general_pool), (self.domain_share, domain_pool)):
            if extra and share > 0:
                swap = rng.random(n) < share
                picks = rng.choice(extra, size=n)
                chosen = [int(g) if s else c for c, g, s in zip(chosen, picks, swap)]
        return chosen

    def _speaker_rate(self, drawn: float, stream: int, index: int) -> float:
        """A speaker's baseline speaking rate: ``drawn`` (1 +- 7 %), or with ``speaker_rates``
        one drawn log-uniformly from that range, from the speaker's own generator (so every
        other draw of the plan stays as it was)."""
        if self.speaker_rates is None:
            return drawn
        slow, fast = self.speaker_rates
        return float(np.exp(np.random.default_rng([self.seed, stream, index]).uniform(np.log(slow), np.log(fast))))

    def _plan_natural(self, rng: np.random.Generator, texts: list[str], pools: dict, general_pools: dict,
                      domain_ids: list[int]) -> list[dict[str, Any]]:
        """Utterances of the natural voices' pseudo-speakers. Each pseudo-speaker has a
        vocal-tract warp (log-normal, ``warp_spread``), a pitch and a rate baseline; a
        ``raised_fraction`` of the male voices' pseudo-speakers are raised into the
        female/child range (warp 1.1-1.2, pitch x1.5-1.8).
        Emotions move rate, pitch (factor ``2 ** (pitch / 50)`` of espeak's offset), range
        (``2 ** (pitch_range / 35)``), volume and tilt like espeak's."""
        voices = self.natural_voices()
        if not voices:
            return []
        targets = self.emotion_targets()
        held = {v: "val" for v in self.val_voices or []} | {v: "test" for v in self.test_voices or []}
        pseudo = [f"{v}#{k:02d}" for v in voices for k in range(self.speakers_per_voice)]
        auto_split = split_groups([p for p in pseudo if p.split("#")[0] not in held],
                                  self.val_fraction, self.test_fraction, self.seed + 12) if not held else {}
        sp, j = self.emotion_strength, self.jitter
        out = []
        for index, speaker in enumerate(pseudo):
            voice = speaker.split("#")[0]
            split = held.get(voice) or auto_split.get(speaker, "train")
            raised = NATURAL_GENDER[voice] == "male" and rng.random() < self.raised_fraction
            warp = float(np.clip(np.exp(self.warp_spread * rng.standard_normal()), 0.8, 1.25))
            pitch = float(np.exp(0.1 * rng.standard_normal()))
            if raised:
                warp, pitch = float(rng.uniform(1.1, 1.2)), float(rng.uniform(1.5, 1.8))
            rate = self._speaker_rate(max(0.6, 1 + self.speaker_spread * SPEAKER_SPREAD["rate"] * rng.standard_normal()),
                                      15, index)
            volume = max(0.5, 1 + self.speaker_spread * SPEAKER_SPREAD["volume"] * rng.standard_normal())
            n = self.utterances_per_speaker
            chosen = self._choose_texts(rng, pools[split], general_pools[split], n,
                                        domain_ids if split == "train" else [])
            offset = index % len(self.emotions)
            emotions = [self.emotions[(k + offset) % len(self.emotions)] for k in range(n)]
            rng.shuffle(emotions)
            folder = f"nat{index:03d}"
            for k, (sid, emotion) in enumerate(zip(chosen, emotions)):
                t = targets[emotion]
                out.append({
                    "path": f"wavs/{folder}/{folder}_{k:03d}.wav", "speaker": speaker, "emotion": emotion,
                    "text": texts[sid], "split": split, "voice": voice, "variant": "", "sentence_id": sid,
                    "rate": round(rate * (1 + sp * (t["rate"] - 1)) * (1 + j * UTTERANCE_JITTER["rate"] * rng.standard_normal()), 4),
                    "pitch": round(pitch * 2 ** ((sp * t["pitch"] + j * UTTERANCE_JITTER["pitch"] * rng.standard_normal()) / 50), 4),
                    "pitch_range": round(2 ** ((sp * t["pitch_range"] + j * UTTERANCE_JITTER["pitch_range"] * rng.standard_normal()) / 35), 4),
                    "volume": round(100 * volume * (1 + sp * (t["volume"] - 1)) * (1 + j * UTTERANCE_JITTER["volume"] * rng.standard_normal())),
                    "word_gap": 0,
                    "tilt": round(float(np.clip(sp * t["tilt"] + j * UTTERANCE_JITTER["tilt"] * rng.standard_normal(), -1, 1)), 3),
                    "source": voice, "warp": round(warp, 4),
                })
        return out

    def _plan_channels(self, utterances: list[dict[str, Any]]) -> None:
        """Draw the recording channel of each utterance: a ``degrade`` share of the training
        ones get a room, noise or a phone line; the rest (and all of val/test) stay clean."""
        rng = np.random.default_rng(self.seed + 13)
        for utt in utterances:
            condition = channel.Degradation()
            if utt["split"] == "train" and self.degrade > 0 and rng.random() < self.degrade:
                condition = channel.draw(rng, tuple(self.degrade_snr_db), tuple(self.degrade_rt60_s))
            utt["channel"] = condition.describe()

    # ------------------------------------------------------------------ synthesis
    def render(self, utt: dict[str, Any], index: int) -> np.ndarray:
        """Audio ``[time]`` at ``sample_rate`` Hz for one planned utterance."""
        natural = utt.get("source", "espeak") != "espeak"  # a plan without sources is all espeak
        audio = self._render_natural(utt, index) if natural else self._render_espeak(utt, index)
        rng = np.random.default_rng([self.seed, index])
        rms = float(np.sqrt(np.mean(audio**2)))  # of the speech: the noise below keeps its SNR under any silence
        if self.silence_s > 0:  # a recording starts and ends in silence; its own generator keeps the rest as before
            lead, trail = np.random.default_rng([self.seed, index, 1]).uniform(0.0, self.silence_s, 2)
            audio = np.pad(audio, (round(lead * self.sample_rate), round(trail * self.sample_rate)))
        if self.snr_db is not None:
            audio = audio + rng.standard_normal(audio.size).astype(np.float32) * rms * 10 ** (-self.snr_db / 20)
        condition = parse_channel(utt.get("channel", "clean"))
        return channel.degrade(audio.astype(np.float32), self.sample_rate, condition, rng)

    def _render_natural(self, utt: dict[str, Any], index: int) -> np.ndarray:
        """A natural voice: the engine renders rate (and pitch/range where it can), the
        pseudo-speaker's warp moves formants and pitch together; voices without pitch
        control carry the utterance's pitch factor in the warp."""
        warp, style = float(utt["warp"]), {"pitch_range": float(utt["pitch_range"])}
        if tts.pitch_control(utt["voice"]):
            style["pitch"] = float(utt["pitch"]) / warp
        else:  # the warp carries the pitch
            warp = float(np.clip(warp * float(utt["pitch"]), 0.75, 1.35))
            style = {}
        # rendered at the rate that, once warped, ends at the planned one
        probe = tts.synthesize(utt["voice"], utt["text"], tts.Style(
            rate=float(utt["rate"]) / warp, seed=self.seed * 100003 + index, **style))
        if probe.audio.size == 0:
            raise RuntimeError(f"{utt['voice']} produced no audio for {utt['text']!r}")
        audio = channel.warp(probe.audio, probe.sample_rate, warp, self.sample_rate)
        level = float(np.sqrt(np.mean(audio**2)))
        if level > 0:  # one level for every engine, so that volume means the same on all of them
            audio = audio * (10 ** (NATURAL_LEVEL_DBFS / 20) / level)
        audio = apply_tilt(audio * float(utt["volume"]) / 100.0, float(utt["tilt"]))
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        return (audio / peak * 0.95 if peak > 0.99 else audio).astype(np.float32)

    def _render_espeak(self, utt: dict[str, Any], index: int) -> np.ndarray:
        prosody = espeak.Prosody(
            rate=utt["rate"], pitch=utt["pitch"], pitch_range=utt["pitch_range"],
            volume=utt["volume"], word_gap=utt["word_gap"],
        )
        audio = espeak.synthesize(utt["text"], utt["speaker"], prosody, seed=self.seed * 100003 + index)
        if audio.size == 0:
            raise RuntimeError(f"espeak-ng produced no audio for {utt['speaker']}: {utt['text']!r}")
        audio = apply_tilt(audio, utt["tilt"])
        return librosa.resample(audio, orig_sr=espeak.sample_rate(), target_sr=self.sample_rate, res_type="soxr_hq")

    def build(self, folder: Path) -> None:
        """Synthesise every planned utterance into ``folder`` and write the metadata."""
        self.check_requirements()
        utterances, sentences = self.plan()
        workers = max(1, min(self.num_workers or available_cores(), len(utterances)))
        log.info("Synthesising %d utterances from %d voices in %d process(es)",
                 len(utterances), len({u["speaker"] for u in utterances}), workers)
        write = partial(synthesise_into, self, folder)
        jobs = list(enumerate(utterances))
        with ProcessPoolExecutor(workers) if workers > 1 else _InProcess() as pool:
            durations = list(progress(pool.map(write, jobs, chunksize=16), len(jobs), "Synthesis"))
        genders = {v: espeak.variant_gender(v) for v in sorted({u["variant"] for u in utterances if u["variant"]})}
        for utt, duration in zip(utterances, durations):
            utt["duration"] = duration
            utt["sample_rate"] = self.sample_rate
            utt["gender"] = genders[utt["variant"]] if utt["source"] == "espeak" else NATURAL_GENDER[utt["voice"]]
        write_csv_atomic(folder / "sentences.csv", sentences, ["sentence_id", "text", "split"])
        summary = {
            split: {
                "utterances": sum(u["split"] == split for u in utterances),
                "speakers": len({u["speaker"] for u in utterances if u["split"] == split}),
                "sentences": len({u["sentence_id"] for u in utterances if u["split"] == split}),
                "hours": round(sum(u["duration"] for u in utterances if u["split"] == split) / 3600, 3),
            }
            for split in SPLITS
        }
        summary["emotions"] = {e: sum(u["emotion"] == e for u in utterances) for e in self.emotions}
        summary["sources"] = {src: {split: sum(u["source"] == src and u["split"] == split for u in utterances)
                                    for split in SPLITS} for src in sorted({u["source"] for u in utterances})}
        write_json_atomic(folder / "summary.json", summary)
        write_csv_atomic(folder / METADATA_FILE, utterances, METADATA_COLUMNS)
        log.info("Synthetic corpus: %s", summary)


def parse_channel(described: str) -> channel.Degradation:
    """The inverse of :meth:`channel.Degradation.describe` (``"reverb+noise snr=9.2 rt60=0.31"``)."""
    kind, *params = described.split() or ["clean"]
    values = dict(p.split("=", 1) for p in params)
    return channel.Degradation(kind, float(values["snr"]) if "snr" in values else None,
                               float(values["rt60"]) if "rt60" in values else None)


def synthesise_into(preparer: EmotionalSpeechPreparer, folder: Path, job: tuple[int, dict[str, Any]]) -> float:
    """Render planned utterance ``job = (index, plan)`` into ``folder``; its duration in s.
    Module-level so that worker processes can receive it."""
    index, utt = job
    audio = preparer.render(utt, index)
    write_wav_atomic(folder / utt["path"], audio, preparer.sample_rate)
    return round(audio.size / preparer.sample_rate, 4)


class _InProcess:
    """The serial stand-in for a process pool (``map`` in this process)."""

    def __enter__(self) -> "_InProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def map(fn, items, chunksize: int = 1):  # noqa: ARG004 - the pool's signature
        return map(fn, items)
