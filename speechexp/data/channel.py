"""What happens to speech between a mouth and a file: vocal-tract warps, rooms, noise, phones.

Used by the synthetic corpus to turn a handful of engines into many speakers
(:func:`warp`) and recordings into realistic ones (:func:`degrade`). Every function takes
and returns mono float32 ``audio [time]``; randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt


def warp(audio: np.ndarray, sample_rate: int, factor: float, target_rate: int) -> np.ndarray:
    """Every frequency (pitch and formants alike) times ``factor`` and the duration divided
    by it, as a shorter (``factor > 1``) or longer vocal tract would; resampled to
    ``target_rate``. ``audio [time]`` -> ``[time']``."""
    return librosa.resample(audio, orig_sr=sample_rate * factor, target_sr=target_rate, res_type="soxr_hq")


@dataclass(frozen=True)
class Degradation:
    """The channel conditions drawn for one recording (kept in the corpus metadata)."""

    kind: str = "clean"          # clean | noise | reverb | phone | reverb+noise
    snr_db: float | None = None
    rt60_s: float | None = None

    def describe(self) -> str:
        parts = [self.kind]
        if self.snr_db is not None:
            parts.append(f"snr={self.snr_db:.1f}")
        if self.rt60_s is not None:
            parts.append(f"rt60={self.rt60_s:.2f}")
        return " ".join(parts)


KINDS = ("noise", "reverb", "phone", "reverb+noise")


def draw(rng: np.random.Generator, snr_db: tuple[float, float], rt60_s: tuple[float, float]) -> Degradation:
    """One of :data:`KINDS` with its SNR (dB) and reverberation time (s), uniform in the ranges."""
    kind = KINDS[rng.integers(len(KINDS))]
    snr = float(rng.uniform(*snr_db)) if "noise" in kind else None
    rt60 = float(rng.uniform(*rt60_s)) if "reverb" in kind else None
    return Degradation(kind, snr, rt60)


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise ``[n]`` (spectral slope 0, -1 or -2 in power), unit RMS."""
    slope = float(rng.choice([0.0, 1.0, 2.0]))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum / freqs ** (slope / 2), n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def room_impulse(rng: np.random.Generator, rt60_s: float, sample_rate: int) -> np.ndarray:
    """A generated room response ``[taps]``: the direct path, then exponentially decaying
    noise whose energy falls by 60 dB in ``rt60_s`` seconds, darker as it decays."""
    taps = int(rt60_s * sample_rate)
    t = np.arange(taps) / sample_rate
    tail = rng.standard_normal(taps) * 10 ** (-3 * t / rt60_s)
    tail = sosfilt(butter(1, 4000, "low", fs=sample_rate, output="sos"), tail)
    delay = int(rng.uniform(0.002, 0.01) * sample_rate)
    response = np.zeros(taps + delay)
    response[0] = 1.0
    response[delay:] += tail * float(rng.uniform(0.1, 0.4))
    return response.astype(np.float32)


def degrade(audio: np.ndarray, sample_rate: int, condition: Degradation, rng: np.random.Generator) -> np.ndarray:
    """``audio [time]`` through ``condition``; same length and RMS."""
    if condition.kind == "clean" or audio.size == 0:
        return audio
    rms = float(np.sqrt(np.mean(audio**2))) + 1e-12
    out = audio.astype(np.float64)
    if condition.rt60_s is not None:
        out = fftconvolve(out, room_impulse(rng, condition.rt60_s, sample_rate))[: audio.size]
    if condition.kind == "phone":  # the telephone band, then 8-bit-like companding noise floor
        out = sosfilt(butter(4, [300, 3400], "bandpass", fs=sample_rate, output="sos"), out)
        out = out + rng.standard_normal(out.size) * np.sqrt(np.mean(out**2)) * 10 ** (-35 / 20)
    if condition.snr_db is not None:
        out_rms = np.sqrt(np.mean(out**2)) + 1e-12
        out = out + coloured_noise(rng, out.size) * out_rms * 10 ** (-condition.snr_db / 20)
    out *= rms / (np.sqrt(np.mean(out**2)) + 1e-12)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
