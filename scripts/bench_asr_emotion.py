#!/usr/bin/env python
"""Benchmark the multitask ASR + emotion study against its targets, with the emotion ceiling.

Runs ``speechexp-train experiment=asr_emotion`` as a user would, in a fresh process with
its wall time (by default into a fresh data folder, so preparing the corpus is part of
the time), reads ``results.json`` and the per-epoch timings that ``EpochSummary`` logs, and prints
test CER, WER, emotion UAR and accuracy, wall seconds and seconds per epoch next to the
targets (CER ≤ 0.05, WER ≤ 0.15, UAR ≥ 0.95 within 600 s) and the prosody ceiling of
``scripts/emotion_ceiling.py`` on the same corpus. ``--pairs N`` then trains N more pairs
``loss=ctc_custom`` / ``loss=ctc_builtin``, alternating which goes first, on the prepared
data, and reports the ratio of their training-epoch times (custom / built-in).

    .venv/bin/python scripts/bench_asr_emotion.py [--pairs N] [--data-dir DIR] [--json]
        [--extra "override ..."]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emotion_ceiling import ceilings  # noqa: E402  (a sibling script)

TARGETS = {"test/cer": ("<=", 0.05), "test/wer": ("<=", 0.15), "test/uar": (">=", 0.95), "wall_s": ("<=", 600.0)}


def met(value: float | None, rule: tuple[str, float]) -> bool:
    if value is None:
        return False
    op, bound = rule
    return value <= bound if op == "<=" else value >= bound


def epoch_timings(run_dir: Path) -> dict[str, float | int | None]:
    """Per-epoch seconds from the CSV logger: training part, validation, and both."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.exists():
        return {"epochs": None, "train_s_per_epoch": None, "s_per_epoch": None}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    train = [float(r["train/seconds"]) for r in rows if r.get("train/seconds")]
    val = [float(r["val/seconds"]) for r in rows if r.get("val/seconds")]
    if not train:
        return {"epochs": 0, "train_s_per_epoch": None, "s_per_epoch": None}
    return {"epochs": len(train), "train_s_per_epoch": statistics.fmean(train),
            "first_epoch_s": train[0], "s_per_epoch": statistics.fmean(train) + (statistics.fmean(val) if val else 0.0)}


def timed_run(label: str, overrides: list[str], data_dir: Path, out: Path) -> dict:
    """One training in a fresh process; its metrics, wall time and epoch timings."""
    run_dir = out / label
    # the default logger (wandb, offline) as a user gets it, plus CSV for per-epoch timings
    command = [sys.executable, "-m", "speechexp.train", "experiment=asr_emotion", f"hydra.run.dir={run_dir}",
               f"paths.data_dir={data_dir}", "trainer.enable_progress_bar=false", "logger=[wandb,csv]", *overrides]
    env = {**os.environ}
    env.setdefault("WANDB_MODE", "offline")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    row = {"run": label, "overrides": " ".join(overrides) or "(defaults)", "wall_s": wall,
           "status": results.get("status", "failed"), "dataset_dir": results.get("dataset_dir")}
    for key in ("test/cer", "test/wer", "test/uar", "test/accuracy", "test/ctc", "test/score"):
        value = results.get(key)
        row[key] = float(value) if isinstance(value, (int, float)) else None
    row.update(epoch_timings(run_dir))
    return row


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=0,
                        help="then train N custom/built-in CTC pairs (alternating order) on the prepared data")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="reuse this data folder (default: a fresh one, so preparation is timed)")
    parser.add_argument("--extra", default="", help="overrides added to every run, quoted")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    extra = shlex.split(args.extra)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data_dir = args.data_dir or tmp / "data"
        runs = [timed_run("default", extra, data_dir, tmp)]
        runs[0]["prepared_in_run"] = args.data_dir is None
        for pair in range(args.pairs):
            order = ("ctc_custom", "ctc_builtin") if pair % 2 == 0 else ("ctc_builtin", "ctc_custom")
            for loss in order:
                run = timed_run(f"pair{pair}_{loss}", [*extra, f"loss={loss}"], data_dir, tmp)
                run["prepared_in_run"] = False
                runs.append(run)
        folder = runs[0]["dataset_dir"]
        ceiling = None
        if folder:  # the ceiling on the very corpus the run trained on
            with open(Path(folder) / "metadata.csv", newline="") as handle:
                emotions = sorted({row["emotion"] for row in csv.DictReader(handle)})
            ceiling = ceilings(Path(folder), emotions)
    default = runs[0]
    targets = {key: met(default.get(key), rule) for key, rule in TARGETS.items()}
    ratio = None
    if args.pairs:
        custom = [r["train_s_per_epoch"] for r in runs[1:] if r["run"].endswith("ctc_custom") and r["train_s_per_epoch"]]
        builtin = [r["train_s_per_epoch"] for r in runs[1:] if r["run"].endswith("ctc_builtin") and r["train_s_per_epoch"]]
        if custom and builtin:
            ratio = statistics.fmean(custom) / statistics.fmean(builtin)
    report = {"runs": runs, "targets": {k: {"rule": f"{r[0]} {r[1]:g}", "met": targets[k]} for k, r in TARGETS.items()},
              "ceiling": ceiling, "custom_over_builtin_epoch_time": ratio}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'run':<20} {'CER':>6} {'WER':>6} {'UAR':>6} {'acc':>6} {'wall s':>7} {'epochs':>6} "
          f"{'s/epoch':>7} {'train s/ep':>10}  overrides")
    for run in runs:
        print(f"{run['run']:<20} {fmt(run['test/cer'], '.3f'):>6} {fmt(run['test/wer'], '.3f'):>6} "
              f"{fmt(run['test/uar'], '.3f'):>6} {fmt(run['test/accuracy'], '.3f'):>6} {run['wall_s']:>7.1f} "
              f"{fmt(run['epochs'], 'd'):>6} {fmt(run['s_per_epoch'], '.1f'):>7} "
              f"{fmt(run['train_s_per_epoch'], '.1f'):>10}  {run['overrides']}")
    print("default run " + ("(data prepared in the run)" if default["prepared_in_run"] else "(data reused)") + "; "
          + ", ".join(f"{k.split('/')[-1]} {TARGETS[k][0]} {TARGETS[k][1]:g}: {'met' if v else 'NOT met'}"
                      for k, v in targets.items()))
    if ratio is not None:
        print(f"custom / built-in CTC training-epoch time over {args.pairs} pair(s): {ratio:.3f} "
              f"(target <= 1.0: {'met' if ratio <= 1.0 else 'NOT met'})")
    if ceiling:
        for row in ceiling["rows"]:
            if row["classifier"] != "chance":
                print(f"emotion ceiling, {row['classifier']} on the six prosody columns: "
                      f"test UAR {row['test_uar']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
