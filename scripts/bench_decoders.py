"""CTC decoders compared on a checkpoint's split: CER, WER and speed of greedy, beam and beam_lm.

    python scripts/bench_decoders.py CKPT [--split val|test] [--data-dir data]
        [--lm-weights 0.5,1,2] [--word-scores -1,0,1] [--beam-size 64]

The model runs once over the split (speaker normalisation as in training); each decoder then
decodes the same log-probabilities, so the table compares decoders, not model runs. With
several ``--lm-weights`` / ``--word-scores`` it is the grid that tunes ``beam_lm`` (tune on
``val``; report ``test`` once with the chosen values). Speed is utterances per second of
decoding alone, and relative to greedy in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate

from speechexp.inference.decoders import BeamSearchDecoder, CTCDecoder
from speechexp.runs.build import trained_task
from speechexp.runs.entry import entry_point, positive


def split_outputs(ckpt_path: str, split: str, data_dir: str):
    """The task and ``[(log_probs (T, 1, C), length, reference)]`` for every utterance of ``split``."""
    task, datamodule, dataset_dir = trained_task(ckpt_path, data_dir)
    if task.speaker_norm:
        from speechexp.data.speaker_norm import speaker_means  # noqa: PLC0415

        task.use_speaker_means(speaker_means(datamodule.dataset(split), task.reads_prosody, task.reads_pitch))
    loader = datamodule.loader(split, shuffle=False)
    outputs = []
    with torch.no_grad():
        for batch in loader:
            features, prosody = task.model_input(batch)
            log_probs, lengths, _ = task(features, batch["feature_lengths"], prosody)
            for i, text in enumerate(batch["text"]):
                outputs.append((log_probs[:, i: i + 1].float(), lengths[i: i + 1], text))
    transcripts = sorted({task.tokenizer.normalize(t) for t in datamodule.dataset("train").rows["text"]})
    return task, outputs, transcripts, dataset_dir


def measure(decoder: CTCDecoder, outputs) -> tuple[float, float, float, list[str]]:
    """CER, WER, utterances per second and the hypotheses of ``decoder`` over ``outputs``."""
    started = time.perf_counter()
    hypotheses = [decoder(log_probs, length)[0] for log_probs, length, _ in outputs]
    seconds = time.perf_counter() - started
    references = [text for _, _, text in outputs]
    return (float(char_error_rate(hypotheses, references)), float(word_error_rate(hypotheses, references)),
            len(outputs) / seconds, hypotheses)


def letters_apart(a: str, b: str) -> int:
    """Levenshtein distance of two words in characters."""
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (char_a != char_b))
    return row[-1]


def error_kinds(hypotheses: list[str], references: list[str], training_words: set[str]) -> str:
    """What a lexicon and a word model can repair: wrong words one letter from the right one
    (in hypotheses with the reference's word count), and reference words never in training."""
    wrong = [(h, r) for hyp, ref in zip(hypotheses, references) if len(hyp.split()) == len(ref.split())
             for h, r in zip(hyp.split(), ref.split()) if h != r]
    near = sum(letters_apart(h, r) == 1 for h, r in wrong)
    words = [w for ref in references for w in ref.split()]
    unseen = sum(w not in training_words for w in words)
    return (f"greedy: {near} of {len(wrong)} wrong words are one letter from the right one (in hypotheses with the "
            f"reference's word count); {unseen} of {len(words)} reference words are not in the training transcripts")


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt_path")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--beam-size", type=positive, default=64)
    parser.add_argument("--lm-order", type=positive, default=3)
    parser.add_argument("--lm-weights", default="1.0")
    parser.add_argument("--word-scores", default="0.0")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    task, outputs, transcripts, dataset_dir = split_outputs(args.ckpt_path, args.split, args.data_dir)
    print(f"{len(outputs)} {args.split} utterances; language model over {len(transcripts)} training sentences\n")
    rows = []
    greedy = CTCDecoder().prepare(task.tokenizer)
    rows.append(("greedy", *measure(greedy, outputs)))
    training_words = {w for sentence in transcripts for w in sentence.split()}
    print(error_kinds(rows[0][4], [text for _, _, text in outputs], training_words) + "\n")
    beam = BeamSearchDecoder(beam_size=args.beam_size).prepare(task.tokenizer)
    rows.append((f"beam {args.beam_size}", *measure(beam, outputs)))
    for weight in (float(w) for w in args.lm_weights.split(",")):
        for score in (float(s) for s in args.word_scores.split(",")):
            decoder = BeamSearchDecoder(beam_size=args.beam_size, lm=True, lm_order=args.lm_order, lm_weight=weight,
                                        word_score=score).prepare(task.tokenizer, transcripts, dataset_dir)
            rows.append((f"beam_lm {args.beam_size}, {args.lm_order}-gram, lm_weight {weight:g}, "
                         f"word_score {score:g}", *measure(decoder, outputs)))
    base_speed = rows[0][3]
    print(f"| decoder ({args.split}) | CER | WER | utterances/s | speed vs greedy |")
    print("|---|---:|---:|---:|---:|")
    for name, cer, wer, speed, _ in rows:
        print(f"| {name} | {cer:.4f} | {wer:.4f} | {speed:.0f} | {speed / base_speed:.2f} |")


if __name__ == "__main__":
    main()
