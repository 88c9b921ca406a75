"""How plainly do a checkpoint's encoder frames say which training voice spoke? Fresh probes.

    .venv/bin/python scripts/probe_voices.py CKPT [CKPT ...] [--data-dir data] [--batches 120]

For each checkpoint: the encoder frames of ``--batches`` shuffled training batches (seeded), a
fresh per-frame voice classifier and a fresh per-utterance one (the frames' mean and standard
deviation; both :class:`speechexp.models.adversary.VoiceAdversary` without a reversal) fitted
on two thirds of the batches, and their accuracy on the rest, beside the share of the most
common voice. A model trained with ``task.module.voice_adversary_weight`` should leave its
frames harder to read than one without; its own adversary's accuracy is printed too.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from speechexp.data.speaker_norm import speaker_means
from speechexp.models.adversary import VoiceAdversary, index_voices
from speechexp.runs.build import trained_task
from speechexp.runs.entry import entry_point, positive

Frames = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (hidden, lengths, voices) per batch


def encoder_frames(ckpt: str, data_dir: str, batches: int) -> tuple[object, Frames, int]:
    """The task, its encoder frames over ``batches`` training batches, and the number of voices."""
    task, datamodule, _ = trained_task(ckpt, data_dir)
    train = datamodule.dataset("train")
    if task.speaker_norm:
        task.use_speaker_means(speaker_means(train, task.reads_prosody, task.reads_pitch))
    index = index_voices(train.sources, 1 << 16)
    captured: list[torch.Tensor] = []
    task.model.encoder.register_forward_hook(lambda module, args, output: captured.append(output.detach()))
    frames: Frames = []
    torch.manual_seed(0)
    with torch.no_grad():
        for n, batch in enumerate(datamodule.loader("train", shuffle=True)):
            if n >= batches:
                break
            captured.clear()
            features, prosody = task.model_input(batch)
            task(features, batch["feature_lengths"], prosody)
            lengths = task.model.encoder_lengths(batch["feature_lengths"]).clamp(max=captured[0].shape[1])
            frames.append((captured[0], lengths, torch.tensor([index[s] for s in batch["source"]])))
    return task, frames, len(index)


def probe(frames: Frames, classes: int, pooling: str, epochs: int) -> float:
    """A fresh classifier's accuracy on the last third of ``frames`` after ``epochs`` over the rest."""
    torch.manual_seed(0)
    split = len(frames) * 2 // 3
    classifier = VoiceAdversary(frames[0][0].shape[-1], classes, pooling=pooling)
    optimiser = torch.optim.Adam(classifier.parameters(), lr=3e-3)
    for _ in range(epochs):
        for hidden, lengths, voices in frames[:split]:
            loss = classifier(hidden, lengths, voices, 0.0)[0]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return float(np.mean([classifier(h, n, v, 0.0)[1].item() for h, n, v in frames[split:]]))


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpts", nargs="+")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--batches", type=positive, default=120)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| checkpoint | voices | most common | its own adversary | fresh, per frame | fresh, per utterance |")
    print("|---|---:|---:|---:|---:|---:|")
    for ckpt in args.ckpts:
        task, frames, classes = encoder_frames(ckpt, args.data_dir, args.batches)
        held_out = torch.cat([voices for _, _, voices in frames[len(frames) * 2 // 3:]])
        common = torch.bincount(held_out).max().item() / len(held_out)
        own = "-"
        if getattr(task, "voice_adversary", None) is not None:
            with torch.no_grad():
                own = f"{np.mean([task.voice_adversary(h, n, v, 0.0)[1].item() for h, n, v in frames]):.3f}"
        print(f"| {ckpt} | {classes} | {common:.3f} | {own} | {probe(frames, classes, 'frame', 4):.3f} "
              f"| {probe(frames, classes, 'utterance', 10):.3f} |")


if __name__ == "__main__":
    main()
