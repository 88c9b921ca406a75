"""A voice adversary: a classifier that tries to tell which voice said each encoder frame (or
each utterance), trained through a gradient reversal (Ganin & Lempitsky, 2015), so the encoder
learns frames that say the words and not who (or which engine) said them.

:func:`reverse_gradient` is the identity forward and multiplies the gradient by ``-scale``
backward: the classifier above it learns to tell the voices apart, the encoder below it
learns to make that impossible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speechexp.errors import SpeechexpError
from speechexp.models.layers import masked_mean_std, valid_mask


def index_voices(sources: list[str], classes: int) -> dict[str, int]:
    """The adversary's class of each training voice (``source``, sorted; unknown ``""`` left out)."""
    voices = sorted(set(sources) - {""})
    if len(voices) > classes:
        raise SpeechexpError(f"The voice adversary has {classes} classes and the training split {len(voices)} voices; "
                             f"set task.module.voice_adversary_classes={len(voices)}.")
    return {voice: i for i, voice in enumerate(voices)}


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged; its gradient multiplied by ``-scale`` on the way back."""
    return _Reverse.apply(x, float(scale))


POOLINGS = ("frame", "utterance")


class VoiceAdversary(nn.Module):
    """Voice classifier behind a gradient reversal, per frame or per utterance.

    ``hidden [batch, frames, dim]``, ``lengths [batch]``, ``voices [batch]`` (class index,
    -1 for unknown) and the reversal ``scale`` → (mean cross-entropy, share classified right),
    over the valid frames of the known voices (``pooling="frame"``) or over their utterances,
    each read as the mean and standard deviation of its frames (``"utterance"``: what stays
    constant over an utterance, which is most of a voice)."""

    def __init__(self, dim: int, classes: int, units: int = 128, pooling: str = "frame"):
        super().__init__()
        if int(classes) < 1:
            raise SpeechexpError(f"task.module.voice_adversary_classes must be at least 1, not {classes}.")
        if pooling not in POOLINGS:
            raise SpeechexpError(f"task.module.voice_adversary_pooling must be one of {POOLINGS}, not {pooling!r}.")
        self.pooling = pooling
        width = dim if pooling == "frame" else 2 * dim
        self.classifier = nn.Sequential(nn.Linear(width, units), nn.GELU(), nn.Linear(units, classes))

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor, voices: torch.Tensor,
                scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        reversed_hidden = reverse_gradient(hidden, scale)
        known = voices >= 0
        if self.pooling == "utterance":
            logits = self.classifier(torch.cat(masked_mean_std(reversed_hidden, lengths), dim=-1))  # [batch, classes]
            picked, targets = logits[known].float(), voices[known]
        else:
            logits = self.classifier(reversed_hidden)  # [batch, frames, classes]
            mask = valid_mask(lengths, hidden.shape[1]) & known.unsqueeze(1)
            picked, targets = logits[mask].float(), voices.unsqueeze(1).expand(-1, hidden.shape[1])[mask]
        if not targets.numel():
            zero = logits.sum() * 0
            return zero, zero.detach()
        loss = F.cross_entropy(picked, targets)
        return loss, (picked.argmax(-1) == targets).float().mean().detach()
