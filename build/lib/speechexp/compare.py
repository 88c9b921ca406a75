"""Compare runs: ``speechexp-compare DIR... [--metric test/si_snr] [--plot FILE]``.

Finds every ``results.json`` under the given folders (a multirun folder holds one per
job), pairs it with the job's overrides (``.hydra/overrides.yaml``) and prints a table
sorted by the metric; ``--csv`` and ``--plot`` write it out as well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic


# overrides that change how a run reports, not what it computes: left out of the table
COSMETIC_OVERRIDES = ("trainer.enable_progress_bar=", "logger=", "paths.", "hydra.")


def load_runs(folders: list[str]) -> list[dict]:
    """One dict per run: ``run``, ``overrides`` and every key of its results.json.

    ``overrides`` keeps only the overrides that differ between the runs (the swept
    ones), so the table shows what changed.
    """
    runs, override_lists = [], []
    for folder in folders:
        found = sorted(Path(folder).rglob("results.json"))
        if not found:
            raise SpeechexpError(f"No results.json under {folder}; pass a run or multirun folder.")
        for path in found:
            results = json.loads(path.read_text())
            overrides_file = path.parent / ".hydra" / "overrides.yaml"
            overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
            override_lists.append(list(overrides or []))
            runs.append({"run": str(path.parent), **results})
    shared = set.intersection(*map(set, override_lists)) if len(runs) > 1 else set()
    for run, overrides in zip(runs, override_lists):
        kept = [o for o in overrides if o not in shared and not o.startswith(COSMETIC_OVERRIDES)]
        run["overrides"] = " ".join(kept) or "(defaults)"
    return runs


def sort_key(metric: str, descending: bool):
    def key(run: dict) -> float:
        value = run.get(metric)
        if not isinstance(value, (int, float)):
            return float("inf")
        return -value if descending else value
    return key


def format_table(runs: list[dict], columns: list[str]) -> str:
    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value if value is not None else "-")
    rows = [[cell(run.get(c)) for c in columns] for run in runs]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="speechexp-compare", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--metric", default="test/si_snr", help="sort by this metric (default: %(default)s)")
    parser.add_argument("--ascending", action="store_true", help="lower is better (e.g. losses, CER)")
    parser.add_argument("--csv", help="also write the table as CSV")
    parser.add_argument("--plot", help="also write a bar chart of the metric per run (PNG)")
    args = parser.parse_args(argv)
    try:
        runs = sorted(load_runs(args.folders), key=sort_key(args.metric, not args.ascending))
    except SpeechexpError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    columns = ["overrides", args.metric, "status", "wall_seconds", "run"]
    print(format_table(runs, columns))
    if args.csv:
        write_csv_atomic(args.csv, runs, sorted({k for run in runs for k in run}))
    if args.plot:
        from speechexp.viz.sweep import plot_metric_per_run  # noqa: PLC0415  (slow import)

        plot_metric_per_run(runs, args.metric, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
