"""What a lone utterance costs a speaker-normalised model: CER, WER and UAR on a checkpoint's
split when each utterance's speaker mean comes from 1 (the utterance itself), 2, 5 or all of
that speaker's utterances in the split.

    python scripts/bench_speaker_mean.py CKPT [--split test] [--data-dir data] [--counts 1,2,5,all]

For k < all, each utterance's mean is over itself and k - 1 other utterances of its speaker,
drawn at random (seeded); "all" is what training and testing use; "alone" is what prediction
uses for a lone utterance of a model trained with ``speaker_mean_dropout`` (the training
speakers' mean, saved in the checkpoint). Decoding is greedy.
"""

from __future__ import annotations

import argparse
import random

import torch
from torchmetrics.functional.classification import multiclass_accuracy
from torchmetrics.functional.text import char_error_rate, word_error_rate

from speechexp.data.emotion_datamodule import collate
from speechexp.errors import SpeechexpError
from speechexp.runs.build import trained_task
from speechexp.runs.entry import entry_point, positive


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt_path")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--counts", default="1,2,5,all")
    parser.add_argument("--batch-size", type=positive, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    counts = args.counts.split(",")
    if not all(c == "all" or (c.isdigit() and int(c) > 0) for c in counts):
        parser.error(f"--counts {args.counts}: give whole numbers above 0 or 'all', comma-separated (e.g. 1,2,5,all)")
    task, datamodule, _ = trained_task(args.ckpt_path, args.data_dir)
    if not task.speaker_norm:
        raise SpeechexpError(f"Checkpoint {args.ckpt_path} does not use speaker normalisation "
                             "(task.module.speaker_norm=false), so there is no speaker mean to measure.")
    data = datamodule.dataset(args.split)
    items = [data[i] for i in range(len(data))]
    speakers = list(data.rows["speaker"])
    by_speaker: dict[str, list[int]] = {}
    for index, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(index)
    references = [item["text"] for item in items]
    emotions = torch.tensor([item["emotion"] for item in items])
    print(f"{len(items)} {args.split} utterances of {len(by_speaker)} speakers "
          f"({min(map(len, by_speaker.values()))}-{max(map(len, by_speaker.values()))} each)\n")
    print(f"| utterances per speaker mean ({args.split}) | CER | WER | UAR |")
    print("|---|---:|---:|---:|")
    counts += ["alone"] if task.lone_mean is not None else []
    for count in counts:
        rng = random.Random(args.seed)
        means = []
        for index, speaker in enumerate(speakers):
            if count == "alone":
                means.append(task.lone_mean)
                continue
            others = [o for o in by_speaker[speaker] if o != index]
            chosen = others if count == "all" else rng.sample(others, min(int(count) - 1, len(others)))
            group = [items[i] for i in [index, *chosen]]
            means.append(task.speaker_statistics([it["features"] for it in group], [it.get("pitch") for it in group]))
        hypotheses, predicted = [], []
        with torch.no_grad():
            for first in range(0, len(items), args.batch_size):
                part = range(first, min(first + args.batch_size, len(items)))
                batch = collate([items[i] for i in part])
                lengths = batch["feature_lengths"]
                features, prosody = task.normalised(batch["features"], lengths, [means[i] for i in part],
                                                    batch.get("pitch") if task.reads_pitch else None)
                log_probs, out_lengths, emotion_logits = task(features, lengths, prosody)
                hypotheses += task.greedy_transcripts(log_probs, out_lengths)
                predicted.append(emotion_logits.argmax(-1))
        uar = multiclass_accuracy(torch.cat(predicted), emotions, num_classes=len(task.emotion_names), average="macro")
        print(f"| {count} | {float(char_error_rate(hypotheses, references)):.4f} | "
              f"{float(word_error_rate(hypotheses, references)):.4f} | {float(uar):.4f} |")


if __name__ == "__main__":
    main()
