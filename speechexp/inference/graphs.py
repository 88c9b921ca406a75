"""Trained models as self-contained graphs from the raw waveform, for ONNX and TorchScript.

Export has no FFT to lean on (ONNX has no inverse STFT, and its STFT op is not in every
runtime), so the spectral front ends are written as fixed linear maps:

- an STFT is a strided ``conv1d`` whose kernels are the window times the real and
  imaginary DFT basis (:class:`ConvSTFT`), the same numbers as ``torch.stft``;
- its inverse (:class:`ConvISTFT`) is a matrix product with the inverse real DFT basis,
  the synthesis window, an overlap-add by ``conv_transpose1d`` and the division by the
  summed squared window, as ``torch.istft`` does.

:class:`SeparatorGraph`: ``mixture [batch, time]`` → ``sources [batch, n_src, time]``.
:class:`AsrEmotionGraph`: ``audio [batch, samples]`` (zero-padded), ``lengths [batch]``
(samples) and, for models trained with per-speaker normalisation, ``speaker_mean
[batch, S]`` → ``log_probs (T, N, C)``, ``out_lengths [N]``, ``emotion_logits
[N, emotions]`` and ``mean_features [N, S]`` (each input's mean log-mel vector over its own
frames, followed by its prosody when the model reads prosody: average it over a speaker's
utterances, the log-mel part weighted by frames, to get that speaker's ``speaker_mean``).
``S`` is ``n_mels``, or ``n_mels + 6`` for a model that reads speaker-relative prosody
(``n_mels + 9`` when its prosody includes pitch: the graph tracks the frames' pitch itself).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from speechexp.models.pitch import PitchTracker
from speechexp.models.prosody import utterance_prosody


def centred_window(win_length: int, n_fft: int) -> torch.Tensor:
    """A periodic Hann window of ``win_length`` zero-padded to ``n_fft`` in the middle, as
    ``torch.stft`` and ``librosa.stft`` use it: ``[n_fft]``."""
    window = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
    left = (n_fft - win_length) // 2
    return F.pad(window, (left, n_fft - win_length - left))


def dft_basis(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of ``2π k n / n_fft``: two ``[n_fft // 2 + 1, n_fft]`` float64."""
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * ((k * n) % n_fft) / n_fft  # the modulo keeps the angles small and exact
    return torch.cos(angle), torch.sin(angle)


class ConvSTFT(nn.Module):
    """Centred STFT: ``audio [batch, time]`` → ``(real, imag)``, each ``[batch, n_fft // 2 + 1,
    frames]`` with ``frames = 1 + time // hop_length``; ``pad_mode`` ``reflect`` (torch.stft's
    default) or ``constant`` (zeros, librosa with ``pad_mode="constant"``)."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None, pad_mode: str = "reflect"):
        super().__init__()
        self.n_fft, self.hop_length, self.pad_mode = int(n_fft), int(hop_length), pad_mode
        window = centred_window(int(win_length or n_fft), self.n_fft)
        cos, sin = dft_basis(self.n_fft)
        kernel = torch.cat([cos * window, -sin * window])  # [2 * bins, n_fft]
        self.register_buffer("kernel", kernel.float().unsqueeze(1), persistent=False)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.n_fft // 2
        padded = F.pad(audio.unsqueeze(1), (half, half), mode=self.pad_mode)  # [batch, 1, time + n_fft]
        spec = F.conv1d(padded, self.kernel, stride=self.hop_length)  # [batch, 2 * bins, frames]
        bins = self.kernel.shape[0] // 2
        return spec[:, :bins], spec[:, bins:]


class ConvISTFT(nn.Module):
    """Inverse of the centred STFT, as ``torch.istft(..., center=True, length=length)``:
    ``(real, imag)`` ``[batch, n_fft // 2 + 1, frames]`` and the output ``length`` →
    ``[batch, length]``."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None):
        super().__init__()
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        window = centred_window(int(win_length or n_fft), self.n_fft)
        cos, sin = dft_basis(self.n_fft)
        weight = torch.full((self.n_fft // 2 + 1, 1), 2.0, dtype=torch.float64)
        weight[0] = 1.0
        if self.n_fft % 2 == 0:
            weight[-1] = 1.0  # DC and Nyquist appear once in the one-sided spectrum
        # irfft as a product: frame[n] = sum_k (w_k / N) (Re X_k cos - Im X_k sin), times the window
        self.register_buffer("real_basis", (weight * cos * window / self.n_fft).float(), persistent=False)
        self.register_buffer("imag_basis", (-weight * sin * window / self.n_fft).float(), persistent=False)
        self.register_buffer("identity", torch.eye(self.n_fft).unsqueeze(1), persistent=False)  # [n_fft, 1, n_fft]
        self.register_buffer("window_squared", (window ** 2).float()[:, None], persistent=False)  # [n_fft, 1]

    def forward(self, real: torch.Tensor, imag: torch.Tensor, length: torch.Tensor | int) -> torch.Tensor:
        frames = torch.einsum("bkf,kn->bnf", real, self.real_basis) + torch.einsum("bkf,kn->bnf", imag,
                                                                                 self.imag_basis)
        audio = F.conv_transpose1d(frames, self.identity, stride=self.hop_length)  # [batch, 1, samples]
        ones = torch.ones_like(real[:1, :1])  # [1, 1, frames]
        envelope = F.conv_transpose1d(self.window_squared.unsqueeze(0) * ones, self.identity, stride=self.hop_length)
        audio = audio / torch.where(envelope > 1e-11, envelope, torch.ones_like(envelope))
        start = self.n_fft // 2
        return audio[:, 0, start:][:, :length] if isinstance(length, int) else \
            audio[:, 0, start:].narrow(1, 0, length)


class SeparatorGraph(nn.Module):
    """:class:`speechexp.models.lstm_separator.LSTMSeparator` on FFT-free front ends:
    ``mixture [batch, time]`` → ``sources [batch, n_src, time]``. Every mixture of a batch
    has the same length (the separator reads the whole signal, so padding would change it)."""

    def __init__(self, separator: nn.Module):
        super().__init__()
        self.separator = separator
        if separator.front_end == "stft":
            self.stft = ConvSTFT(separator.n_fft, separator.hop_length)
            self.istft = ConvISTFT(separator.n_fft, separator.hop_length)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        if self.separator.front_end != "stft":
            return self.separator(mixture)
        real, imag = self.stft(mixture)  # [batch, bins, frames]
        magnitude = torch.sqrt(real * real + imag * imag)
        features = torch.log1p(magnitude).transpose(1, 2)  # [batch, frames, bins]
        masks = torch.sigmoid(self.separator._sequence(features))  # [batch, frames, n_src, bins]
        masks = masks.permute(0, 2, 3, 1)  # [batch, n_src, bins, frames]
        batch, n_src = masks.shape[0], masks.shape[1]
        masked_real = (masks * real.unsqueeze(1)).flatten(0, 1)  # [batch * n_src, bins, frames]
        masked_imag = (masks * imag.unsqueeze(1)).flatten(0, 1)
        audio = self.istft(masked_real, masked_imag, mixture.shape[-1])  # [batch * n_src, time]
        return audio.reshape(batch, n_src, audio.shape[-1])


class AsrEmotionGraph(nn.Module):
    """Log-mel features (:class:`speechexp.data.features.LogMel`'s, zero-padded centred
    frames), per-speaker normalisation when the model was trained with it, and the
    multitask model; see the module docstring for inputs and outputs."""

    def __init__(self, model: nn.Module, logmel, speaker_norm: bool, reads_prosody: bool = False,
                 reads_pitch: bool = False):
        super().__init__()
        self.model, self.speaker_norm, self.reads_prosody = model, bool(speaker_norm), bool(reads_prosody)
        self.pitch = PitchTracker(logmel.sample_rate, logmel.hop_length) if reads_pitch else None
        if self.pitch is not None:
            self.pitch_stft = ConvSTFT(**self.pitch.stft_settings(), pad_mode="constant")
        self.hop_length, self.log_floor = int(logmel.hop_length), float(logmel.log_floor)
        self.stft = ConvSTFT(logmel.n_fft, logmel.hop_length, logmel.win_length, pad_mode="constant")
        self.register_buffer("filterbank", torch.from_numpy(logmel.filterbank().copy()).float().T.contiguous(),
                             persistent=False)  # [bins, n_mels]

    def features(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio [batch, samples]``, ``lengths [batch]`` → ``features [batch, frames, n_mels]``
        (padding frames zeroed) and ``feature_lengths [batch]``."""
        real, imag = self.stft(audio)
        power = (real * real + imag * imag).transpose(1, 2)  # [batch, frames, bins]
        features = torch.log(power @ self.filterbank + self.log_floor)
        feature_lengths = 1 + torch.div(lengths, self.hop_length, rounding_mode="floor")
        valid = torch.arange(features.shape[1], device=features.device)[None, :] < feature_lengths[:, None]
        return features * valid.unsqueeze(-1).to(features.dtype), feature_lengths

    def track_pitch(self, audio: torch.Tensor) -> torch.Tensor | None:
        """``audio [batch, samples]`` → the frames' ``pitch [batch, frames, 2]`` (``None`` for a
        model whose prosody has no pitch); padding frames are left to the lengths."""
        if self.pitch is None:
            return None
        real, imag = self.pitch_stft(audio)
        return self.pitch(real * real + imag * imag)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor, speaker_mean: torch.Tensor | None = None):
        features, feature_lengths = self.features(audio, lengths)
        mean_features = features.sum(1) / feature_lengths.clamp(min=1).unsqueeze(-1).to(features.dtype)
        prosody = None
        if self.reads_prosody:
            prosody = utterance_prosody(features, feature_lengths, self.track_pitch(audio))
            mean_features = torch.cat([mean_features, prosody], dim=-1)
        if self.speaker_norm:  # relative to the speaker's (without speaker_norm: the utterance's own)
            n_mels = features.shape[-1]
            if prosody is not None:
                prosody = prosody - speaker_mean[:, n_mels:]
            valid = torch.arange(features.shape[1], device=features.device)[None, :] < feature_lengths[:, None]
            features = (features - speaker_mean[:, :n_mels].unsqueeze(1)) * valid.unsqueeze(-1).to(features.dtype)
        if prosody is None:
            log_probs, out_lengths, emotion_logits = self.model(features, feature_lengths)
        else:
            log_probs, out_lengths, emotion_logits = self.model(features, feature_lengths, prosody)
        return log_probs, out_lengths, emotion_logits, mean_features
