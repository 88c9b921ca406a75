#!/usr/bin/env python
"""Benchmark a 4-job separation sweep: joblib (parallel processes) against the serial
launcher, in one run, alternating, each multirun a fresh process with its own sweep folder.

Target: on this 2-core machine the joblib sweep takes at most 0.65x the serial wall time.
Torch threads per job are set by speechexp (cores // n_jobs), so the parallel jobs do not
oversubscribe the cores; the serial jobs use every core.

A third sweep runs the same jobs serially with one torch thread each. It measures what a
parallel launcher can gain at best: two 1-thread jobs at once, with no contention and free
worker start, take half their summed time. So the lowest joblib/serial ratio these jobs
allow is (serial launch overhead + sum of 1-thread job times / 2) / serial wall, where the
launch overhead is the serial sweep's wall minus its jobs' summed ``wall_seconds``.

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
LAUNCHERS = {
    "serial": [],
    "serial_1thread": ["threads=1"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
}


def timed_sweep(launcher: list[str], data_dir: Path, sweep_dir: Path) -> tuple[float, list[float]]:
    """Run the sweep; return its wall seconds and each job's own ``wall_seconds``."""
    command = [sys.executable, "-m", "speechexp.train", "-m", *GRID, *launcher, f"hydra.sweep.dir={sweep_dir}",
               f"paths.data_dir={data_dir}", "logger=csv", "trainer.enable_progress_bar=false"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({' '.join(launcher) or 'serial'}):\n{done.stderr[-3000:]}")
    results = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]
    statuses = [r["status"] for r in results]
    if statuses != ["completed"] * 4:
        raise SystemExit(f"expected 4 completed jobs in {sweep_dir}, got {statuses}")
    return wall, [float(r["wall_seconds"]) for r in results]


def lowest_ratio(serial_wall: float, serial_jobs: list[float], one_thread_jobs: list[float]) -> float:
    """The joblib/serial ratio with perfect 2-way parallelism of the 1-thread jobs."""
    launch_overhead = serial_wall - sum(serial_jobs)
    return (launch_overhead + sum(one_thread_jobs) / 2) / serial_wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three sweeps, alternated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    jobs: dict[str, list[list[float]]] = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        SinusoidPreparer().prepare(tmp / "data")  # prepared once: the sweeps time training only
        for repeat in range(args.repeats):
            for name, launcher in LAUNCHERS.items():
                wall, job_seconds = timed_sweep(launcher, tmp / "data", tmp / f"{name}{repeat}")
                walls[name].append(wall)
                jobs[name].append(job_seconds)
    serial, parallel = statistics.median(walls["serial"]), statistics.median(walls["joblib"])
    ratio = parallel / serial
    bounds = [lowest_ratio(walls["serial"][i], jobs["serial"][i], jobs["serial_1thread"][i])
              for i in range(args.repeats)]
    thread_speedup = [sum(one) / sum(two) for one, two in zip(jobs["serial_1thread"], jobs["serial"])]
    report = {"cores": len(os.sched_getaffinity(0)), "jobs": 4, "wall_s": walls, "job_wall_s": jobs,
              "ratio": ratio, "target": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
              "lowest_possible_ratio": statistics.median(bounds),
              "two_thread_speedup_per_job": statistics.median(thread_speedup)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"4-job separation sweep ({' '.join(GRID)}), {report['cores']} cores, median of {args.repeats}")
    print(f"{'launcher':<15} {'wall s':>8} {'sum of job s':>13}  runs")
    for name in LAUNCHERS:
        summed = statistics.median(sum(j) for j in jobs[name])
        print(f"{name:<15} {statistics.median(walls[name]):>8.1f} {summed:>13.1f}  "
              f"{', '.join(f'{t:.1f}' for t in walls[name])}")
    print(f"joblib / serial: {ratio:.2f} (target ≤ {TARGET_RATIO}): {'met' if report['met'] else 'NOT met'}")
    print(f"one job on 2 threads vs 1: {report['two_thread_speedup_per_job']:.2f}x faster; so even perfect "
          f"2-way parallelism of 1-thread jobs gives joblib / serial ≥ {report['lowest_possible_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
