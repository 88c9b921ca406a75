"""Multitask speech model: a shared encoder, a CTC ASR head and an emotion head.

features ``[batch, frames, n_mels]`` → input normalisation (optionally cepstrally smoothed,
``input_lifter``) → (training only) SpecAugment → (optionally, ``freq_conv_channels``, 2-D
time × frequency convolutions) → convolutional front end (time subsampled by
``stride``; optionally instance-normalised, ``front_norm``) → BiLSTM encoder → (a)
per-frame character log-probs for CTC and (b) an utterance embedding → emotion logits.

The emotion embedding pools any of five sources over each utterance's valid frames,
and may add a sixth, ``prosody``, given beside the features:
``encoder`` (the BiLSTM output), ``conv`` (the shared front end's features), ``branch``
(a convolutional stack of its own that reads the globally normalised features, so
loudness, pitch and spectral tilt reach it unchanged by per-utterance normalisation
or SpecAugment), ``input`` (those globally normalised log-mel features themselves) and
``ctc`` (the mean CTC posteriors, detached: the share of non-blank frames measures
speaking rate); ``prosody`` is the utterance's loudness, energy and brightness (and, with
``pitch``, its F0 level, range and voicing) relative to its speaker (:func:`speechexp.data.speaker_norm.relative_prosody`, computed by the task from
the raw features), batch-normalised.

The BiLSTM (:class:`speechexp.models.layers.ExactBiLSTM`) runs on padded tensors (far
faster on CPU than packed sequences) and is still exact: the backward direction reads
each utterance reversed within its own length, so padding never reaches a valid frame in
either direction.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from speechexp.models.layers import (
    AttentionPooling, ExactBiLSTM, MaskedBatchNorm, StatsPooling, mask_frames, masked_mean_std, sequence_dropout,
    valid_mask,
)
from speechexp.models.prosody import prosody_size


def cepstral_lifter(n_mels: int, keep: int | None) -> torch.Tensor | None:
    """The ``[n_mels, n_mels]`` matrix that keeps a log-mel frame's first ``keep`` DCT-II
    (orthonormal) coefficients: ``frame @ lifter``. Symmetric; ``None`` when ``keep`` is."""
    if keep is None:
        return None
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mels, dtype=torch.float64).unsqueeze(1)
    dct = torch.cos(torch.pi * k * (2 * n + 1) / (2 * n_mels)) * (2.0 / n_mels) ** 0.5  # [coefficient, mel]
    dct[0] /= 2**0.5
    kept = dct[:keep]
    return (kept.T @ kept).float()


FRONT_NORMS = ("none", "instance")
INPUT_NORMS = ("utterance", "global", "frame", "none")
EMOTION_SOURCES = ("encoder", "conv", "branch", "input", "ctc", "prosody")
EMOTION_POOLINGS = ("attention", "stats")


class MultitaskSpeechModel(nn.Module):
    """Shared encoder with CTC and emotion heads.

    Args:
        n_mels: input feature size (from the datamodule).
        vocab_size: CTC classes including the blank at 0 (from the datamodule).
        num_emotions: emotion classes (from the datamodule).
        conv_channels: channels of the convolutional front end.
        stride: time subsampling of the front end (1 to 4; its first convolution has
            kernel ``2 * stride + 1``, so ``frames' = ceil(frames / stride)``). CTC needs
            ``frames'`` ≥ characters + repeated neighbours of each transcript.
        units: LSTM hidden size per direction; ``layers``: stacked BiLSTM layers.
        dropout: between LSTM layers and before the heads.
        locked_dropout: on the frame sequences, one dropout mask per utterance and
            channel shared over frames (:class:`~speechexp.models.layers.LockedDropout`)
            instead of one per element.
        input_norm: ``utterance`` (mean and variance per utterance and feature over
            its valid frames), ``global`` (running statistics over the data), ``frame``
            (LayerNorm of each frame) or ``none``; what the encoder reads.
        augment: optional module ``(features, lengths) → features`` applied to the
            encoder's input in training only, e.g. :class:`speechexp.models.augment.SpecAugment`.
        emotion_sources: what the emotion head pools, any of :data:`EMOTION_SOURCES`.
        emotion_pooling: ``stats`` (mean and standard deviation) or ``attention``
            (a learned weighted mean); ``input`` and ``ctc`` always use the mean and std.
        emotion_units: hidden size of the emotion classifier (default ``units``).
        branch_channels, branch_layers: width and depth of the ``branch`` source's
            convolutions (the first subsamples time by 2).
        pitch: the ``prosody`` source also reads the utterance's pitch statistics (three more
            numbers; the datamodule sets it with ``pitch: true``, which tracks each frame's F0).
        ctc_upsample: CTC frames per encoder frame (the CTC head predicts that many
            frames from each), so the LSTM can run at ``stride`` 4 (half the cost of 2)
            while CTC still gets ``ceil(frames / stride) * ctc_upsample`` frames.
        input_lifter: keep only the first ``input_lifter`` cepstral coefficients (a DCT
            over the mel axis) of what the encoder reads: a smoothed spectral envelope
            without the pitch harmonics, which belong to the voice, not the words (the
            emotion sources still read the full features). ``None`` keeps all.
        front_norm: ``instance`` normalises each front-end convolution's channels over the
            utterance's own frames (mean 0, variance 1, before the activation), meant to strip
            what is constant over an utterance, such as much of a voice's timbre (Chou et
            al., 2019); ``none`` does not.
        freq_conv_channels: with more than 0, two 2-D convolutions (3 × 3 over time and mel
            bins, that many channels, each halving the mel axis) read the encoder's input before
            the front end: their filters slide along the frequency axis, so a pattern such as a
            formant transition or a burst is detected alike at any height, as it sits at
            different heights in different voices (DeepSpeech 2's 2-D front end, Amodei et
            al., 2016). The front end then reads ``freq_conv_channels * ceil(n_mels / 4)``
            channels per frame. 0: none.
        phoneme_classes: with more than 0, a second CTC head over the same encoder frames
            predicts phonemes (:mod:`speechexp.data.phonemes`: that many classes including
            the blank; the datamodule sets it with ``phonemes: true``); ``forward(...,
            with_phonemes=True)`` returns its log-probs too.
    """

    def __init__(self, n_mels: int, vocab_size: int, num_emotions: int, conv_channels: int = 128,
                 stride: int = 2, units: int = 128, layers: int = 2, dropout: float = 0.1,
                 input_norm: str = "utterance", augment: nn.Module | None = None,
                 emotion_sources: Sequence[str] = ("encoder", "conv", "input", "ctc"),
                 emotion_pooling: str = "stats", emotion_units: int | None = None, ctc_upsample: int = 1,
                 branch_channels: int = 128, branch_layers: int = 3, locked_dropout: bool = False,
                 pitch: bool = False, input_lifter: int | None = None, front_norm: str = "none",
                 phoneme_classes: int = 0, freq_conv_channels: int = 0):
        super().__init__()
        if not 1 <= int(stride) <= 4:
            raise ValueError(f"stride must be 1 to 4, not {stride}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, not {input_norm!r}")
        sources = list(emotion_sources)
        if not sources or any(s not in EMOTION_SOURCES for s in sources):
            raise ValueError(f"emotion_sources must name some of {EMOTION_SOURCES}, not {sources}")
        if emotion_pooling not in EMOTION_POOLINGS:
            raise ValueError(f"emotion_pooling must be one of {EMOTION_POOLINGS}, not {emotion_pooling!r}")
        if int(ctc_upsample) < 1:
            raise ValueError(f"ctc_upsample must be at least 1, not {ctc_upsample}")
        self.stride, self.input_norm, self.emotion_sources = int(stride), input_norm, sources
        self.pitch = bool(pitch)  # the prosody includes the utterance's pitch (the data's pitch tracks)
        self.ctc_upsample = int(ctc_upsample)
        if input_lifter is not None and not 1 <= int(input_lifter) <= n_mels:
            raise ValueError(f"input_lifter must be 1 to n_mels ({n_mels}) or null, not {input_lifter}")
        self.input_lifter = None if input_lifter is None else int(input_lifter)
        if front_norm not in FRONT_NORMS:
            raise ValueError(f"front_norm must be one of {FRONT_NORMS}, not {front_norm!r}")
        self.front_norm = front_norm
        # rebuilt from input_lifter, so checkpoints without it still load
        self.register_buffer("lifter", cepstral_lifter(n_mels, self.input_lifter), persistent=False)
        self.global_norm = MaskedBatchNorm(n_mels)
        self.frame_norm = nn.LayerNorm(n_mels) if input_norm == "frame" else None
        self.augment = augment
        freq_channels = int(freq_conv_channels)
        if freq_channels < 0:
            raise ValueError(f"freq_conv_channels must be 0 (none) or more, not {freq_conv_channels}")
        self.freq_convs = nn.ModuleList(
            [nn.Conv2d(1, freq_channels, kernel_size=3, stride=(1, 2), padding=1),
             nn.Conv2d(freq_channels, freq_channels, kernel_size=3, stride=(1, 2), padding=1)]
        ) if freq_channels else None
        # each stride-2 convolution gives ceil(bins / 2) bins
        front_in = freq_channels * math.ceil(math.ceil(n_mels / 2) / 2) if freq_channels else n_mels
        self.conv1 = nn.Conv1d(front_in, conv_channels, kernel_size=2 * self.stride + 1, stride=self.stride,
                               padding=self.stride)
        self.conv2 = nn.Conv1d(conv_channels, conv_channels, kernel_size=3, padding=1)
        self.encoder = ExactBiLSTM(conv_channels, units, layers, dropout, locked_dropout)
        self.sequence_dropout = sequence_dropout(dropout, locked_dropout)
        self.dropout = nn.Dropout(dropout)
        self.vocab_size = int(vocab_size)
        self.ctc_head = nn.Linear(2 * units, vocab_size * self.ctc_upsample)
        self.phoneme_classes = int(phoneme_classes)
        if self.phoneme_classes:
            self.phoneme_head = nn.Linear(2 * units, self.phoneme_classes * self.ctc_upsample)

        def pooled(dim: int) -> tuple[nn.Module, int]:
            if emotion_pooling == "attention":
                return AttentionPooling(dim), dim
            return StatsPooling(), 2 * dim

        if "branch" in sources:
            self.branch = nn.ModuleList(
                [nn.Conv1d(n_mels, branch_channels, kernel_size=5, stride=2, padding=2)]
                + [nn.Conv1d(branch_channels, branch_channels, kernel_size=3, padding=1)
                   for _ in range(max(0, int(branch_layers) - 1))])
        self.pools = nn.ModuleDict()  # one pooling per source, in emotion_sources order
        self.source_widths: dict[str, int] = {}  # each source's share of the emotion head's input, in order
        size = 0
        for source in sources:
            if source == "prosody":
                width = prosody_size(self.pitch)
                self.pools[source] = MaskedBatchNorm(width)
            elif source in ("input", "ctc"):
                self.pools[source], width = StatsPooling(), 2 * (n_mels if source == "input" else vocab_size)
            else:
                dim = {"encoder": 2 * units, "conv": conv_channels, "branch": branch_channels}[source]
                self.pools[source], width = pooled(dim)
            self.source_widths[source] = width
            size += width
        hidden = int(emotion_units or units)
        self.emotion_head = nn.Sequential(nn.Linear(size, hidden), nn.GELU(), nn.Dropout(dropout),
                                          nn.Linear(hidden, num_emotions))

    @property
    def reads_prosody(self) -> bool:
        """Whether :meth:`forward` needs each utterance's speaker-relative ``prosody``."""
        return "prosody" in self.emotion_sources

    @property
    def reads_pitch(self) -> bool:
        """Whether that prosody includes pitch (its last three numbers, from the frames' pitch)."""
        return self.reads_prosody and self.pitch

    def encoder_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames after subsampling, ``ceil(lengths / stride)``: ``[batch]`` → ``[batch]``."""
        return torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """CTC frames, ``ceil(lengths / stride) * ctc_upsample``: ``[batch]`` → ``[batch]``."""
        return self.encoder_lengths(lengths) * self.ctc_upsample

    def normalise(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features [batch, frames, n_mels]`` → (encoder input, globally normalised features),
        both ``[batch, frames, n_mels]`` with padding zeroed."""
        global_features = self.global_norm(features, lengths)
        if self.input_norm == "utterance":
            base = self.smooth(global_features)
            mean, std = masked_mean_std(base, lengths)
            encoder_input = mask_frames((base - mean.unsqueeze(1)) / std.unsqueeze(1), lengths)
        elif self.input_norm == "global":
            encoder_input = self.smooth(global_features)
        elif self.input_norm == "frame":
            encoder_input = mask_frames(self.frame_norm(self.smooth(features)), lengths)
        else:
            encoder_input = mask_frames(self.smooth(features), lengths)
        return encoder_input, global_features

    def smooth(self, features: torch.Tensor) -> torch.Tensor:
        """The ``input_lifter``'s spectral envelope of ``[..., n_mels]`` features (unchanged without one)."""
        return features if self.lifter is None else features @ self.lifter.to(features.dtype)

    def normalise_front(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``front_norm`` of a front-end convolution's output ``[batch, frames', channels]``."""
        if self.front_norm == "none":
            return x
        mean, std = masked_mean_std(x, lengths)
        return (x - mean.unsqueeze(1)) / std.unsqueeze(1)

    def spectro_temporal(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The ``freq_conv_channels`` convolutions: ``[batch, frames, n_mels]`` →
        ``[batch, frames, channels * ceil(n_mels / 4)]`` (unchanged without them), padding zeroed
        after each, so it never leaks into valid frames."""
        if self.freq_convs is None:
            return x
        valid = valid_mask(lengths, x.shape[1])[:, None, :, None].to(x.dtype)  # [batch, 1, frames, 1]
        x = x.unsqueeze(1)  # [batch, 1, frames, n_mels]
        for conv in self.freq_convs:
            x = nn.functional.gelu(conv(x)) * valid
        return x.permute(0, 2, 1, 3).flatten(2)  # [batch, frames, channels * bins]

    def run_branch(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The emotion branch: ``[batch, frames, n_mels]`` → ``([batch, frames', channels], lengths')``
        with ``frames' = ceil(frames / 2)``."""
        lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        x = features.transpose(1, 2)
        for conv in self.branch:
            x = nn.functional.gelu(conv(x))
            x = x * valid_mask(lengths, x.shape[2]).unsqueeze(1).to(x.dtype)
        return x.transpose(1, 2), lengths

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, prosody: torch.Tensor | None = None,
                with_phonemes: bool = False) -> tuple[torch.Tensor, ...]:
        """``features [batch, frames, n_mels]``, ``lengths [batch]`` (and, when the emotion
        head reads it, ``prosody [batch, 6]``, or ``[batch, 9]`` with ``pitch``) →
        ``log_probs (T, N, C)`` (CTC layout: ``T = frames' * ctc_upsample``, ``N = batch``,
        ``C = vocab_size``), ``out_lengths [batch]``,
        ``emotion_logits [batch, num_emotions]``, and with ``with_phonemes`` (a model with
        ``phoneme_classes``) the phoneme log-probs ``(T, N, phoneme_classes)``."""
        if with_phonemes and not self.phoneme_classes:
            raise ValueError("this model has no phoneme head; build it with phoneme_classes "
                             "(dataset.datamodule.phonemes=true)")
        lengths = lengths.clamp(min=0, max=features.shape[1])
        if self.reads_prosody and prosody is None:
            raise ValueError("this model's emotion head reads prosody; pass each utterance's speaker-relative "
                             "prosody (speechexp.data.speaker_norm.relative_prosody)")
        x, global_features = self.normalise(features, lengths)
        if self.augment is not None and self.training:
            x = mask_frames(self.augment(x, lengths), lengths)
        x = self.spectro_temporal(x, lengths)
        # padded frames are zero before each conv, so padding never leaks into valid frames
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)  # [batch, frames', channels]
        enc_lengths = self.encoder_lengths(lengths).clamp(max=x.shape[1])
        x = mask_frames(nn.functional.gelu(self.normalise_front(x, enc_lengths)), enc_lengths)
        x = self.conv2(x.transpose(1, 2)).transpose(1, 2)
        conv = mask_frames(nn.functional.gelu(self.normalise_front(x, enc_lengths)), enc_lengths)
        hidden = self.sequence_dropout(self.encoder(conv, enc_lengths))
        batch, frames = hidden.shape[:2]
        log_probs = self.ctc_head(hidden).view(batch, frames * self.ctc_upsample, self.vocab_size).log_softmax(-1)
        out_lengths = enc_lengths * self.ctc_upsample  # log_probs [batch, frames' * ctc_upsample, vocab]
        pooled = []
        for source in self.emotion_sources:
            if source == "encoder":
                pooled.append(self.pools[source](hidden, enc_lengths))
            elif source == "conv":
                pooled.append(self.pools[source](conv, enc_lengths))
            elif source == "branch":
                pooled.append(self.pools[source](*self.run_branch(global_features, lengths)))
            elif source == "input":
                pooled.append(self.pools[source](global_features, lengths))
            elif source == "prosody":
                one_frame = torch.ones_like(lengths)  # standardised by running statistics, as the input is
                pooled.append(self.pools[source](prosody.to(features.dtype).unsqueeze(1), one_frame).squeeze(1))
            else:  # ctc: mean posteriors (speaking rate) and their spread, not trained through
                pooled.append(self.pools[source](log_probs.detach().exp(), out_lengths))
        emotion_logits = self.emotion_head(self.dropout(torch.cat(pooled, dim=-1)))
        if with_phonemes:
            phonemes = self.phoneme_head(hidden).view(batch, frames * self.ctc_upsample, self.phoneme_classes)
            return log_probs.transpose(0, 1), out_lengths, emotion_logits, phonemes.log_softmax(-1).transpose(0, 1)
        return log_probs.transpose(0, 1), out_lengths, emotion_logits
