"""Recurrent layers that behave under mixed precision."""

from __future__ import annotations

import torch
from torch import nn


def run_lstm(lstm: nn.LSTM, inputs: torch.Tensor | nn.utils.rnn.PackedSequence):
    """``lstm(inputs)``, in float32 under CPU autocast: oneDNN has no bf16/fp16 LSTM on CPUs
    without AVX512-BF16 ("could not create a primitive descriptor"), and a half-precision
    LSTM gains little on a CPU. On CUDA autocast applies as usual."""
    data = inputs.data if isinstance(inputs, nn.utils.rnn.PackedSequence) else inputs
    if data.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return lstm(inputs)
    if isinstance(inputs, nn.utils.rnn.PackedSequence):
        inputs = inputs._replace(data=inputs.data.float())
    else:
        inputs = inputs.float()
    with torch.autocast("cpu", enabled=False):
        return lstm(inputs)
