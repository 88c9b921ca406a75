#!/usr/bin/env python
"""Benchmark a 4-job separation sweep: joblib (parallel processes) against the serial
launcher, in one run, alternating, each multirun a fresh process with its own sweep folder.

Target: on this 2-core machine the joblib sweep takes at most 0.65x the serial wall time.
Torch threads per job are set by speechexp (cores // n_jobs), so the parallel jobs do not
oversubscribe the cores; the serial jobs use every core.

    .venv/bin/python scripts/bench_sweep.py [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speechexp.data.sinusoids import SinusoidPreparer

TARGET_RATIO = 0.65
GRID = ("model.units=32,64", "optimizer.lr=0.001,0.003")


def timed_sweep(launcher: list[str], data_dir: Path, sweep_dir: Path) -> float:
    command = [sys.executable, "-m", "speechexp.train", "-m", *GRID, *launcher, f"hydra.sweep.dir={sweep_dir}",
               f"paths.data_dir={data_dir}", "logger=csv", "trainer.enable_progress_bar=false"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({' '.join(launcher) or 'serial'}):\n{done.stderr[-3000:]}")
    statuses = [json.loads(p.read_text())["status"] for p in sweep_dir.glob("*/results.json")]
    if statuses != ["completed"] * 4:
        raise SystemExit(f"expected 4 completed jobs in {sweep_dir}, got {statuses}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="serial/joblib pairs, alternated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    launchers = {"serial": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
    times: dict[str, list[float]] = {name: [] for name in launchers}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        SinusoidPreparer().prepare(tmp / "data")  # prepared once: the sweeps time training only
        for repeat in range(args.repeats):
            for name, launcher in launchers.items():
                times[name].append(timed_sweep(launcher, tmp / "data", tmp / f"{name}{repeat}"))
    serial, parallel = statistics.median(times["serial"]), statistics.median(times["joblib"])
    ratio = parallel / serial
    report = {"cores": len(os.sched_getaffinity(0)), "jobs": 4, "serial_s": times["serial"],
              "joblib_s": times["joblib"], "ratio": ratio, "target": TARGET_RATIO, "met": ratio <= TARGET_RATIO}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"4-job separation sweep ({' '.join(GRID)}), {report['cores']} cores, median of {args.repeats}")
    print(f"{'launcher':<10} {'wall s':>8}  runs")
    for name in launchers:
        print(f"{name:<10} {statistics.median(times[name]):>8.1f}  {', '.join(f'{t:.1f}' for t in times[name])}")
    print(f"joblib / serial: {ratio:.2f} (target ≤ {TARGET_RATIO}): {'met' if report['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
