"""Compare runs: ``speechexp-compare DIR... [--metric val/si_snr --mode max]``.

Writes ``comparison.csv``/``.md`` (one row per job, best first by the task's metric),
seed aggregates, sweep figures and ``best.yaml`` into the first folder (see
:mod:`speechexp.sweeps.comparison`), and prints the table. Runs by itself at the end of every
multirun.
"""

from __future__ import annotations

import argparse
import sys

from speechexp.runs.entry import entry_point
from speechexp.sweeps.comparison import write_comparison


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="speechexp-compare", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="run or multirun folders")
    parser.add_argument("--metric", help="sort by this metric (default: the task's monitor, e.g. val/si_snr)")
    parser.add_argument("--mode", choices=("min", "max"),
                        help="direction of --metric (default: the task's for its monitor, else what the name says: "
                             "cer, wer, loss min; snr, uar, accuracy, score max)")
    args = parser.parse_args(argv)
    comparison = write_comparison(args.folders, args.metric, args.mode)
    print(comparison.files[1].read_text(), end="")  # comparison.md
    for path in comparison.files:
        print(f"wrote {path}")
    if comparison.best_command is not None:
        print(f"best ({comparison.metric}, {comparison.mode}): {comparison.best_command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
