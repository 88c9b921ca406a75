"""A labelled folder (``transcripts.csv`` with absolute paths) of a prepared corpus' test
utterances from some sources, e.g. the held-out voice of ``dataset/voices=natural``:

    .venv/bin/python scripts/voice_folder.py data/emotional_speech-<hash> OUT [--source festival:ked]

so that any checkpoint, also one trained on espeak alone, is measured on the same unseen
voice with ``scripts/bench_real_voices.py CKPT --folder OUT``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from speechexp.io import write_csv_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", action="append", help="sources to keep (default: every non-espeak one)")
    args = parser.parse_args()
    with (args.dataset_dir / "metadata.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test" and r.get("source", "espeak") != "espeak"
                and (not args.source or r["source"] in args.source)]
    if not rows:
        raise SystemExit(f"No test rows of {args.source or 'natural voices'} in {args.dataset_dir}/metadata.csv.")
    listed = [{"path": str((args.dataset_dir / r["path"]).resolve()), "text": r["text"], "emotion": r["emotion"],
               "speaker": r["speaker"], "source": r["source"]} for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(args.out / "transcripts.csv", listed, ["path", "text", "emotion", "speaker", "source"])
    print(f"{len(listed)} utterances of {sorted({r['source'] for r in listed})} -> {args.out / 'transcripts.csv'}")


if __name__ == "__main__":
    main()
