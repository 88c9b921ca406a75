"""Offline synthetic emotional speech: espeak-ng voices with emotion rendered as prosody.

Each speaker is an espeak-ng base voice plus a voice variant (e.g. ``en-us+m3``) with its
own random baseline (rate, pitch, pitch range, loudness). Each emotion moves prosody
*relative to that baseline* (see :data:`EMOTION_PROSODY`) and every utterance adds random
jitter around the emotion's target, so the classes overlap somewhat. A spectral tilt
(brighter for angry/happy, darker for sad) is applied after synthesis. Splits are
speaker- and sentence-disjoint: val and test hold voices and sentences unseen in train.
"""

from __future__ import annotations

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

from speechexp.data import espeak
from speechexp.data.emotion_splits import SPLITS, split_groups
from speechexp.data.preparer import METADATA_FILE, DatasetPreparer
from speechexp.data.progress import progress
from speechexp.data.sentences import sentence_bank
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
    "word_gap", "tilt",
]


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

    def fingerprint_fields(self) -> dict[str, Any]:
        """The fields plus the resolved voices and prosody targets, so that changing the
        code's defaults (presets, variant list) also gives a new dataset folder; not
        ``num_workers``, which changes how fast, not what."""
        fields = super().fingerprint_fields()
        fields.pop("num_workers")
        fields["resolved"] = {"voices": self.voices(), "targets": self.emotion_targets(), "format": 1}
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

    def voices(self) -> list[tuple[str, str]]:
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

    def plan(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Utterance plan (no audio): ``(utterances, sentences)`` as lists of dicts."""
        if self.num_speakers < 3 or self.utterances_per_speaker < 1 or self.num_sentences < 3:
            raise SpeechexpError(
                "dataset.preparer needs num_speakers >= 3, num_sentences >= 3 and "
                "utterances_per_speaker >= 1; raise them."
            )
        targets = self.emotion_targets()
        texts = sentence_bank(self.num_sentences, seed=self.seed)
        sentence_split = split_groups(range(len(texts)), self.val_fraction, self.test_fraction, self.seed + 1)
        voices = self.voices()
        speaker_split = split_groups(voices, self.val_fraction, self.test_fraction, self.seed + 2)
        pools = {s: [i for i in range(len(texts)) if sentence_split[i] == s] for s in SPLITS}
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
                "rate": 175.0 * max(0.5, 1 + sr * SPEAKER_SPREAD["rate"] * rng.standard_normal()),
                "pitch": 50.0 + sr * SPEAKER_SPREAD["pitch"] * rng.standard_normal(),
                "pitch_range": 50.0 + sr * SPEAKER_SPREAD["pitch_range"] * rng.standard_normal(),
                "volume": 100.0 * max(0.5, 1 + sr * SPEAKER_SPREAD["volume"] * rng.standard_normal()),
            }
            n = self.utterances_per_speaker
            order = rng.permutation(len(pool))
            chosen = [pool[order[k % len(pool)]] for k in range(n)]
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
                })
        return utterances, sentences

    # ------------------------------------------------------------------ synthesis
    def render(self, utt: dict[str, Any], index: int) -> np.ndarray:
        """Audio ``[time]`` at ``sample_rate`` Hz for one planned utterance."""
        prosody = espeak.Prosody(
            rate=utt["rate"], pitch=utt["pitch"], pitch_range=utt["pitch_range"],
            volume=utt["volume"], word_gap=utt["word_gap"],
        )
        audio = espeak.synthesize(utt["text"], utt["speaker"], prosody, seed=self.seed * 100003 + index)
        if audio.size == 0:
            raise RuntimeError(f"espeak-ng produced no audio for {utt['speaker']}: {utt['text']!r}")
        audio = apply_tilt(audio, utt["tilt"])
        audio = librosa.resample(audio, orig_sr=espeak.sample_rate(), target_sr=self.sample_rate, res_type="soxr_hq")
        if self.snr_db is not None:
            rng = np.random.default_rng([self.seed, index])
            rms = float(np.sqrt(np.mean(audio**2)))
            audio = audio + rng.standard_normal(audio.size).astype(np.float32) * rms * 10 ** (-self.snr_db / 20)
        return audio.astype(np.float32)

    def build(self, folder: Path) -> None:
        """Synthesise every planned utterance into ``folder`` and write the metadata."""
        utterances, sentences = self.plan()
        workers = max(1, min(self.num_workers or available_cores(), len(utterances)))
        log.info("Synthesising %d utterances from %d voices in %d process(es)",
                 len(utterances), self.num_speakers, workers)
        write = partial(synthesise_into, self, folder)
        jobs = list(enumerate(utterances))
        with ProcessPoolExecutor(workers) if workers > 1 else _InProcess() as pool:
            durations = list(progress(pool.map(write, jobs, chunksize=16), len(jobs), "Synthesis"))
        genders = {v: espeak.variant_gender(v) for v in sorted({u["variant"] for u in utterances})}
        for utt, duration in zip(utterances, durations):
            utt["duration"] = duration
            utt["sample_rate"] = self.sample_rate
            utt["gender"] = genders[utt["variant"]]
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
        write_json_atomic(folder / "summary.json", summary)
        write_csv_atomic(folder / METADATA_FILE, utterances, METADATA_COLUMNS)
        log.info("Synthetic corpus: %s", summary)


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
