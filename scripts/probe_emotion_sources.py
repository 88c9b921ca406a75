"""Which of a checkpoint's emotion sources carry emotion to unseen voices? Linear probes per source.

    .venv/bin/python scripts/probe_emotion_sources.py CKPT [--data-dir data] [--C 0.1]

Pools what the emotion head reads (each of ``model.emotion_sources``, as the head gets it)
over every utterance of the checkpoint's corpus, plus the six speaker-relative prosody numbers
of :mod:`speechexp.models.prosody` (whether or not the model reads them), fits a standardised
logistic regression on the training split for each source and for all of them, and prints
its UAR on the validation and test utterances of every voice (``source``), beside the head's
own. A probe that reads a held-out voice well from a source the head also has, while the head
does not, says the head leans on what does not transfer.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from speechexp.data.speaker_norm import relative_prosody, speaker_means
from speechexp.runs.build import trained_task
from speechexp.runs.entry import entry_point

SPLITS = ("train", "val", "test")


def pooled(task, datamodule) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per split: the head's input, the relative prosody, emotion labels, sources and the head's predictions."""
    statistics = {}  # with the mean prosody whether or not the model reads it (the task uses what it needs)
    for split in SPLITS:
        statistics.update(speaker_means(datamodule.dataset(split), prosody=True, pitch=task.reads_pitch))
    if task.speaker_norm:
        task.use_speaker_means(statistics)
    captured: list[torch.Tensor] = []
    task.model.emotion_head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    out = {}
    for split in SPLITS:
        heads, prosody, labels, sources, predicted = [], [], [], [], []
        with torch.no_grad():
            for batch in datamodule.loader(split, shuffle=False):
                captured.clear()
                features, given = task.model_input(batch)
                lengths = batch["feature_lengths"]
                relative = relative_prosody(batch["features"], lengths, [statistics[path] for path in batch["path"]],
                                            batch.get("pitch") if task.reads_pitch else None)
                _, _, logits = task(features, lengths, given)
                heads.append(captured[0].numpy())
                prosody.append(relative.numpy())
                labels += batch["emotion"].tolist()
                sources += batch["source"]
                predicted += logits.argmax(-1).tolist()
        out[split] = (np.concatenate(heads), np.concatenate(prosody), np.array(labels), np.array(sources),
                      np.array(predicted))
    return out


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the probes")
    args = parser.parse_args()
    torch.set_num_threads(2)
    task, datamodule, _ = trained_task(args.ckpt, args.data_dir)
    data = pooled(task, datamodule)
    columns, start = {}, 0
    for source, width in task.model.source_widths.items():
        columns[source] = np.arange(start, start + width)
        start += width
    groups = [[s] for s in columns] + [list(columns)]
    if "prosody" not in columns:
        groups.append(["relative prosody"])
    held_out = [(split, voice) for split in ("val", "test") for voice in sorted(set(data[split][3]))]
    print("| probe on | " + " | ".join(f"{split} {voice}" for split, voice in held_out) + " |")
    print("|---|" + "---:|" * len(held_out))
    print("| the model's emotion head | " + " | ".join(
        f"{balanced_accuracy_score(data[s][2][data[s][3] == v], data[s][4][data[s][3] == v]):.3f}"
        for s, v in held_out) + " |")

    def design(split: str, group: list[str]) -> np.ndarray:
        head, prosody = data[split][0], data[split][1]
        return np.concatenate([prosody if name == "relative prosody" else head[:, columns[name]] for name in group], 1)

    for group in groups:
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=args.C))
        probe.fit(design("train", group), data["train"][2])
        scores = []
        for split, voice in held_out:
            rows = data[split][3] == voice
            scores.append(balanced_accuracy_score(data[split][2][rows], probe.predict(design(split, group)[rows])))
        print(f"| {' + '.join(group)} | " + " | ".join(f"{score:.3f}" for score in scores) + " |")


if __name__ == "__main__":
    main()
