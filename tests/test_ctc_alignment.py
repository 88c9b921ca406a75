"""ctc_alignment (Viterbi) against a brute-force enumeration of all frame labellings."""

from __future__ import annotations

import itertools

import pytest
import torch

from speechexp.losses.ctc import ctc_alignment, ctc_loss


def collapse(frames, blank):
    """CTC's many-to-one map: merge repeats, then drop blanks."""
    out, prev = [], None
    for c in frames:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def brute_force(lp, target, blank):
    """Best (score, path) over every labelling of the T frames that collapses to target."""
    n_frames, n_classes = lp.shape
    best = (float("-inf"), None)
    for frames in itertools.product(range(n_classes), repeat=n_frames):
        if collapse(frames, blank) == list(target):
            score = sum(lp[t, c].item() for t, c in enumerate(frames))
            if score > best[0]:
                best = (score, list(frames))
    return best


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("blank", [0, 2])
def test_alignment_equals_brute_force(seed, blank):
    gen = torch.Generator().manual_seed(seed)
    T, N, C = 6, 5, 3
    lp = torch.randn(T, N, C, generator=gen, dtype=torch.float64).log_softmax(-1)
    labels = [c for c in range(C) if c != blank]
    targets = torch.tensor(labels)[torch.randint(len(labels), (N, 4), generator=gen)]
    il = torch.tensor([6, 5, 3, 0, 6])
    tl = torch.tensor([3, 2, 4, 0, 0])
    paths, scores = ctc_alignment(lp, targets, il, tl, blank=blank)
    assert paths.shape == (N, T) and scores.shape == (N,)
    for b in range(N):
        n = int(il[b])
        score, path = brute_force(lp[:n, b], targets[b, : tl[b]].tolist(), blank)
        if path is None:
            assert scores[b] == float("-inf") and torch.all(paths[b] == -1)
            continue
        assert paths[b, :n].tolist() == path
        assert torch.all(paths[b, n:] == -1)
        assert scores[b].item() == pytest.approx(score, rel=1e-12, abs=1e-12)


def test_alignment_score_never_exceeds_log_likelihood():
    gen = torch.Generator().manual_seed(5)
    T, N, C, S = 60, 8, 10, 20
    lp = torch.randn(T, N, C, generator=gen, dtype=torch.float64).log_softmax(-1)
    targets = torch.randint(1, C, (N, S), generator=gen)
    il = torch.randint(40, T + 1, (N,), generator=gen)
    tl = torch.randint(0, S + 1, (N,), generator=gen)
    paths, scores = ctc_alignment(lp, targets, il, tl)
    log_lik = -ctc_loss(lp, targets, il, tl, reduction="none")
    assert torch.all(scores <= log_lik + 1e-9)
    for b in range(N):
        n = int(il[b])
        path = paths[b, :n]
        # the path is a valid alignment of the target and its score is its sum of log-probs
        assert collapse(path.tolist(), 0) == targets[b, : tl[b]].tolist()
        assert scores[b].item() == pytest.approx(lp[torch.arange(n), b, path].sum().item(), rel=1e-12)


def test_unbatched_alignment():
    lp = torch.randn(5, 4, dtype=torch.float64).log_softmax(-1)
    path, score = ctc_alignment(lp, torch.tensor([1, 2]), torch.tensor(5), torch.tensor(2))
    assert path.shape == (5,) and score.shape == ()
    assert collapse(path.tolist(), 0) == [1, 2]
