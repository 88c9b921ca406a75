"""A labelled folder (``transcripts.csv`` with absolute paths) of a prepared corpus'
utterances from some sources, e.g. the held-out voice of ``dataset/voices=natural``:

    .venv/bin/python scripts/voice_folder.py data/emotional_speech-<hash> OUT [--source festival:ked]
        [--split test|val|train] [--limit N] [--text grammar|words|sentences]

so that any checkpoint, also one trained on espeak alone, is measured on the same unseen
voice with ``scripts/bench_real_voices.py CKPT --folder OUT``. ``--split train --limit 600``
samples what the model trained on: how well it fits its own training data. ``--text`` keeps
one kind of text: the grammar's sentences, general English word sequences, or natural
sentences (``dataset.preparer.general_sentences``), as the corpus' preparer made them.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from speechexp.data.emotional_speech import EmotionalSpeechPreparer
from speechexp.data.metadata import read_metadata
from speechexp.io import write_csv_atomic
from speechexp.runs.entry import entry_point, positive

TEXT_KINDS = ("grammar", "words", "sentences")


def text_kinds(dataset_dir: Path) -> dict[str, str]:
    """Each grammar and general text of the corpus in ``dataset_dir`` -> its kind (one of
    :data:`TEXT_KINDS`), as the preparer of its fields (``preparer.json``) makes them."""
    fields = json.loads((dataset_dir / "preparer.json").read_text())["fields"]
    fields.pop("resolved", None)
    return EmotionalSpeechPreparer(**fields).text_kinds()


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", action="append", help="sources to keep (default: every non-espeak one)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=positive, help="at most this many utterances, a seeded random sample")
    parser.add_argument("--text", choices=TEXT_KINDS, help="keep one kind of text (default: every kind)")
    args = parser.parse_args()
    wanted = (lambda source: source in args.source) if args.source else (lambda source: source != "espeak")
    rows = [{**r, "source": r.get("source", "espeak")} for r in read_metadata(args.dataset_dir, ["split", "text"])]
    rows = [r for r in rows if r["split"] == args.split and wanted(r["source"])]
    if args.text:
        kinds = text_kinds(args.dataset_dir)
        rows = [r for r in rows if kinds.get(r["text"]) == args.text]
    if not rows:
        raise SystemExit(f"No {args.split} rows of {args.source or 'natural voices'}{' saying ' + args.text if args.text else ''} "
                         f"in {args.dataset_dir}/metadata.csv.")
    if args.limit is not None and args.limit < len(rows):
        rows = sorted(random.Random(0).sample(rows, args.limit), key=lambda r: r["path"])
    listed = [{"path": str((args.dataset_dir / r["path"]).resolve()), "text": r["text"], "emotion": r["emotion"],
               "speaker": r["speaker"], "source": r["source"]} for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(args.out / "transcripts.csv", listed, ["path", "text", "emotion", "speaker", "source"])
    print(f"{len(listed)} {args.split} utterances of {sorted({r['source'] for r in listed})} -> {args.out / 'transcripts.csv'}")


if __name__ == "__main__":
    main()
