"""Separating recordings of any length: whole when short, else in overlapping windows.

A recording up to ``chunk`` samples long is separated in one pass at its own length. A
longer one is cut into windows of ``chunk`` samples, ``hop = chunk - overlap`` apart (the
last window ends at the recording's end, so no window is padded). Permutation-invariant
training leaves each window's source order arbitrary, so every window's sources are
reordered to correlate best with the previous window's on their overlap, then the windows
are overlap-added with a tapered (Hann) weight normalised to sum to one at every sample.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from speechexp.errors import SpeechexpError


def check_windows(chunk_seconds: float, overlap_seconds: float) -> None:
    """Refuse windows that would not advance: a ``chunk_seconds`` of 0 or less, or an
    ``overlap_seconds`` outside [0, chunk_seconds), which would start a window at every sample."""
    if not chunk_seconds > 0:
        raise SpeechexpError(f"chunk_seconds={chunk_seconds} must be greater than 0; pass the window length in "
                             "seconds, e.g. chunk_seconds=4.0.")
    if not 0 <= overlap_seconds < chunk_seconds:
        raise SpeechexpError(f"overlap_seconds={overlap_seconds} must be at least 0 and shorter than "
                             f"chunk_seconds={chunk_seconds} (the windows would start a sample apart); pass e.g. "
                             f"overlap_seconds={chunk_seconds / 8:g}.")


def window_starts(length: int, chunk: int, overlap: int) -> list[int]:
    """Start samples of the windows covering ``length`` samples (one window when it fits)."""
    if length <= chunk:
        return [0]
    hop = max(1, chunk - overlap)
    starts = list(range(0, length - chunk, hop))
    return starts + [length - chunk]


def taper(chunk: int, overlap: int, device: torch.device | None = None) -> torch.Tensor:
    """Overlap-add weight ``[chunk]``: Hann ramps over the ``overlap`` samples at each end, 1 between.
    Never zero, so a sample covered by one window keeps that window's value."""
    weight = torch.ones(chunk, device=device)
    ramp = min(overlap, chunk // 2)
    if ramp > 0:
        rise = torch.hann_window(2 * ramp + 2, periodic=False, device=device)[1: ramp + 1]
        weight[:ramp] = rise
        weight[chunk - ramp:] = rise.flip(0)
    return weight


def best_permutation(previous: torch.Tensor, current: torch.Tensor) -> list[int]:
    """The order of ``current``'s sources ``[n_src, overlap]`` that correlates best with
    ``previous``'s ``[n_src, overlap]`` (the same samples), summed over sources."""
    n_src = previous.shape[0]
    prev = previous - previous.mean(-1, keepdim=True)
    cur = current - current.mean(-1, keepdim=True)
    similarity = (prev / (prev.norm(dim=-1, keepdim=True) + 1e-8)) @ (cur / (cur.norm(dim=-1, keepdim=True) + 1e-8)).T
    return list(max(itertools.permutations(range(n_src)),
                    key=lambda order: sum(float(similarity[i, j]) for i, j in enumerate(order))))


@torch.no_grad()
def separate_batch(model: nn.Module, mixtures: list[torch.Tensor], chunk: int, overlap: int,
                   batch_size: int = 16) -> list[torch.Tensor]:
    """Separate each mixture ``[time]`` (at the model's rate) → ``[n_src, time]``.

    Windows of equal length, from all mixtures, run through ``model`` (``[batch, time]`` →
    ``[batch, n_src, time]``) ``batch_size`` at a time; each window's output is the same
    whichever others share its batch.
    """
    device = next(model.parameters()).device
    pieces: list[tuple[int, int, int]] = []  # (mixture, start, length)
    for index, mixture in enumerate(mixtures):
        length = int(mixture.shape[-1])
        pieces += [(index, start, min(chunk, length)) for start in window_starts(length, chunk, overlap)]
    outputs: dict[tuple[int, int], torch.Tensor] = {}
    by_length: dict[int, list[tuple[int, int, int]]] = {}
    for piece in pieces:
        by_length.setdefault(piece[2], []).append(piece)
    for length, group in by_length.items():
        for first in range(0, len(group), batch_size):
            part = group[first: first + batch_size]
            batch = torch.stack([mixtures[i][s: s + length] for i, s, _ in part]).to(device, torch.float32)
            estimates = model(batch).float().cpu()  # [batch, n_src, length]
            for (i, s, _), estimate in zip(part, estimates):
                outputs[(i, s)] = estimate
    results = []
    for index, mixture in enumerate(mixtures):
        length = int(mixture.shape[-1])
        starts = window_starts(length, chunk, overlap)
        if len(starts) == 1:
            results.append(outputs[(index, 0)])
            continue
        weight = taper(chunk, overlap)
        first = outputs[(index, starts[0])]
        total = torch.zeros(first.shape[0], length)
        norm = torch.zeros(length)
        previous_start, previous = None, None
        for start in starts:
            estimate = outputs[(index, start)]
            if previous is not None:
                shared = previous_start + chunk - start  # samples both windows cover
                order = best_permutation(previous[:, chunk - shared:], estimate[:, :shared])
                estimate = estimate[order]
            total[:, start: start + chunk] += estimate * weight
            norm[start: start + chunk] += weight
            previous_start, previous = start, estimate
        results.append(total / norm)
    return results
