"""Benchmark parallel against serial preparation of the default synthetic corpus.

Two measurements, each alternating serial (``num_workers=1``) and parallel (every core)
in the same run, so that machine load hits both alike; the best of ``--rounds`` is kept:

* synthesis: ``EmotionalSpeechPreparer().build(folder)`` in this process;
* command: the whole ``speechexp-prepare dataset=emotional_speech`` (start-up, planning,
  synthesis, metadata) as a subprocess into a fresh data dir.

Prints a table with the ratio parallel / serial (< 1 is faster), the cores and the load
average before the run. Usage: ``python scripts/bench_prepare.py [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speechexp.data.emotional_speech import EmotionalSpeechPreparer, available_cores


def time_synthesis(workers: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        EmotionalSpeechPreparer(num_workers=workers).build(Path(folder))
        return time.perf_counter() - start


def time_command(workers: int) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        command = [sys.executable, "-m", "speechexp.prepare", "dataset=emotional_speech", f"paths.data_dir={data_dir}",
                   f"dataset.preparer.num_workers={workers}", f"hydra.run.dir={data_dir}/log"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores, load = available_cores(), os.getloadavg()[0]
    rows = []
    for name, measure in (("synthesis", time_synthesis), ("speechexp-prepare", time_command)):
        serial, parallel = [], []
        for _ in range(args.rounds):
            serial.append(measure(1))
            parallel.append(measure(cores))
        rows.append((name, min(serial), min(parallel)))
    print(f"default emotional_speech corpus (3800 utterances); {cores} cores, load average {load:.2f} before; "
          f"best of {args.rounds}")
    print(f"| {'step':<18} | serial s | {cores} workers s | ratio |")
    print(f"|{'-' * 20}|---------:|----------:|------:|")
    for name, serial, parallel in rows:
        print(f"| {name:<18} | {serial:8.1f} | {parallel:9.1f} | {parallel / serial:5.2f} |")


if __name__ == "__main__":
    main()
