"""Multitask speech model: a shared encoder, a CTC ASR head and an emotion head.

features ``[batch, frames, n_mels]`` → convolutional front end (time subsampled by
``stride``) → BiLSTM encoder → (a) per-frame character log-probs for CTC and (b) an
utterance embedding (attention pooling over valid frames) → emotion logits.
"""

from __future__ import annotations

import torch
from torch import nn


def mask_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the frames at or beyond each length: ``[batch, frames, dim]`` → same shape."""
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    return x * valid.unsqueeze(-1).to(x.dtype)


class AttentionPooling(nn.Module):
    """Weighted mean over valid frames: ``[batch, frames, dim]`` → ``[batch, dim]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
        scores = self.score(hidden).squeeze(-1).masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # all-masked rows (length 0) → zeros
        return torch.einsum("bt,btd->bd", weights, hidden)


class MultitaskSpeechModel(nn.Module):
    """Shared encoder with CTC and emotion heads.

    Args:
        n_mels: input feature size (from the datamodule).
        vocab_size: CTC classes including the blank at 0 (from the datamodule).
        num_emotions: emotion classes (from the datamodule).
        conv_channels: channels of the convolutional front end.
        stride: time subsampling of the front end (1 or 2).
        units: LSTM hidden size per direction; ``layers``: stacked BiLSTM layers.
        dropout: between layers and before the heads.
    """


    def __init__(self, n_mels: int, vocab_size: int, num_emotions: int, conv_channels: int = 128,
                 stride: int = 2, units: int = 128, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.stride = int(stride)
        self.norm = nn.LayerNorm(n_mels)
        self.conv1 = nn.Conv1d(n_mels, conv_channels, kernel_size=5, stride=self.stride, padding=2)
        self.conv2 = nn.Conv1d(conv_channels, conv_channels, kernel_size=3, padding=1)
        self.encoder = nn.LSTM(conv_channels, units, num_layers=layers, batch_first=True,
                               bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.ctc_head = nn.Linear(2 * units, vocab_size)
        self.pool = AttentionPooling(2 * units)
        self.emotion_head = nn.Sequential(nn.Linear(2 * units, units), nn.GELU(), nn.Linear(units, num_emotions))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames after subsampling: ``[batch]`` → ``[batch]`` (matches the first conv)."""
        return torch.div(lengths + 2 * 2 - 5, self.stride, rounding_mode="floor") + 1

    def forward(self, features: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``features [batch, frames, n_mels]``, ``lengths [batch]`` →
        ``log_probs [frames', batch, vocab]`` (CTC layout), ``out_lengths [batch]``,
        ``emotion_logits [batch, num_emotions]``."""
        # padded frames are zeroed before each conv, so padding never leaks into valid frames
        x = mask_frames(self.norm(features), lengths).transpose(1, 2)  # [batch, n_mels, frames]
        x = nn.functional.gelu(self.conv1(x)).transpose(1, 2)  # [batch, frames', channels]
        out_lengths = self.output_lengths(lengths).clamp(min=0, max=x.shape[1])
        x = nn.functional.gelu(self.conv2(mask_frames(x, out_lengths).transpose(1, 2))).transpose(1, 2)
        packed = nn.utils.rnn.pack_padded_sequence(x, out_lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        hidden, _ = self.encoder(packed)
        hidden, _ = nn.utils.rnn.pad_packed_sequence(hidden, batch_first=True, total_length=x.shape[1])
        hidden = self.dropout(hidden)
        log_probs = self.ctc_head(hidden).log_softmax(-1).transpose(0, 1)
        emotion_logits = self.emotion_head(self.pool(hidden, out_lengths))
        return log_probs, out_lengths, emotion_logits
