"""LSTM source separator with two front ends.

- ``stft`` (default): the LSTM reads the mixture's log-magnitude STFT frames and predicts
  one sigmoid mask per source; masked spectra (with the mixture phase) are inverted.
- ``time``: the seed's design: the waveform is cut into non-overlapping frames of
  ``frame_size`` samples, the LSTM reads them and a linear layer emits each source's frame.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn

from speechexp.models.recurrent import run_lstm



class FrontEnd(str, Enum):
    """Input representation: STFT magnitude masks or raw time-domain frames."""

    stft = "stft"
    time = "time"


FRONT_ENDS = tuple(f.value for f in FrontEnd)


class LSTMSeparator(nn.Module):
    """Maps a mixture ``[batch, time]`` to estimated sources ``[batch, n_src, time]``.

    Args:
        units: LSTM hidden size (per direction).
        layers: stacked LSTM layers.
        bidirectional: read frames in both directions.
        front_end: ``"stft"`` (magnitude masks) or ``"time"`` (raw frames).
        n_fft, hop_length: STFT size and hop (``stft`` front end).
        frame_size: samples per frame (``time`` front end).
        n_src: number of sources to estimate.
        dropout: dropout between LSTM layers and before the output layer.
    """


    def __init__(self, units: int = 128, layers: int = 2, bidirectional: bool = True,
                 front_end: FrontEnd = FrontEnd.stft, n_fft: int = 256, hop_length: int = 64,
                 frame_size: int = 80, n_src: int = 2, dropout: float = 0.0):
        super().__init__()
        if front_end not in FRONT_ENDS:
            raise ValueError(f"front_end={front_end!r} is not one of {list(FRONT_ENDS)}")
        self.front_end, self.n_src = FrontEnd(front_end).value, n_src
        self.n_fft, self.hop_length, self.frame_size = n_fft, hop_length, frame_size
        n_in = n_fft // 2 + 1 if front_end == "stft" else frame_size
        self.lstm = nn.LSTM(n_in, units, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(units * (2 if bidirectional else 1), n_in * n_src)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``mixture [batch, time]`` → ``estimates [batch, n_src, time]``."""
        if self.front_end == "stft":
            return self._forward_stft(mixture)
        return self._forward_time(mixture)

    def _sequence(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames [batch, n_frames, n_in]`` → ``[batch, n_frames, n_src, n_in]``."""
        hidden, _ = run_lstm(self.lstm, frames)
        out = self.head(self.dropout(hidden))
        return out.view(*out.shape[:2], self.n_src, -1)

    def _forward_stft(self, mixture: torch.Tensor) -> torch.Tensor:
        length = mixture.shape[-1]
        spec = torch.stft(mixture, self.n_fft, self.hop_length, window=self.window,
                          return_complex=True)  # [batch, freq, frames]
        features = torch.log1p(spec.abs()).transpose(1, 2)  # [batch, frames, freq]
        masks = torch.sigmoid(self._sequence(features))  # [batch, frames, n_src, freq]
        masked = masks.permute(0, 2, 3, 1) * spec.unsqueeze(1)  # [batch, n_src, freq, frames]
        flat = masked.reshape(-1, *masked.shape[2:])
        audio = torch.istft(flat, self.n_fft, self.hop_length, window=self.window, length=length)
        return audio.view(mixture.shape[0], self.n_src, length)

    def _forward_time(self, mixture: torch.Tensor) -> torch.Tensor:
        batch, length = mixture.shape
        pad = (-length) % self.frame_size
        frames = nn.functional.pad(mixture, (0, pad)).view(batch, -1, self.frame_size)
        out = self._sequence(frames)  # [batch, n_frames, n_src, frame_size]
        return out.permute(0, 2, 1, 3).reshape(batch, self.n_src, -1)[..., :length]
