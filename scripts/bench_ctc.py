"""Benchmark speechexp's CTC loss against torch's built-in (forward + backward).

For each shape (C = 30 classes, full-length inputs and targets, float32 log-probs
from ``log_softmax(randn)``) it prints the best (minimum) wall time of ``loss.backward()``
including the forward, for the built-in and the custom loss, measured alternately
in the same process so that machine load hits both alike (the minimum over the
repetitions is the least disturbed by other processes; cheap shapes get extra
repetitions, up to about half a second each); their ratio
(custom / built-in, < 1 is faster); the peak extra memory of each; and the
geometric mean of the time ratios. Both use torch's thread count (printed).

Peak memory:
* CPU: each measurement runs in a fresh subprocess: one warm-up call on the same
  inputs (so code loading, thread pools and caches are not counted), then the
  kernel's peak resident set size is reset (``/proc/self/clear_refs`` = 5) and the
  reported figure is ``VmHWM`` after one forward+backward minus ``VmRSS`` before.
  ``MALLOC_MMAP_THRESHOLD_=16384`` makes glibc map (and unmap on free) every
  buffer of 16 KiB or more, so the resident size follows live buffers of both
  torch and numba; small allocations hidden in the heap may be missed (< 1 MiB).
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``,
  minus the memory allocated before.

On CUDA the custom loss runs its Triton kernel (the backend is printed; the torch path
if triton is missing); the warm-up call compiles it, so compilation is not timed.

Usage: ``python scripts/bench_ctc.py [--device cpu|cuda] [--reps 7] [--json] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from speechexp.losses.ctc import ctc_loss
from speechexp.losses.ctc.dispatch import DEFAULT as CTC_BACKENDS

SHAPES = [(100, 8, 20), (100, 64, 20), (500, 8, 20), (500, 64, 100), (1000, 8, 200), (1000, 64, 200)]
N_CLASSES = 30
IMPLS = {"builtin": F.ctc_loss, "custom": ctc_loss}


def make_inputs(n_frames: int, n: int, s: int, device: str, seed: int = 0):
    """log_probs (T, N, C) float32, targets (N, S) in 1..C-1, full lengths (N,)."""
    gen = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(n_frames, n, N_CLASSES, generator=gen).log_softmax(-1).to(device)
    targets = torch.randint(1, N_CLASSES, (n, s), generator=gen).to(device)
    input_lengths = torch.full((n,), n_frames, dtype=torch.long, device=device)
    target_lengths = torch.full((n,), s, dtype=torch.long, device=device)
    return log_probs, targets, input_lengths, target_lengths


def step(impl: str, inputs) -> None:
    """One forward + backward through the loss (mean reduction)."""
    log_probs, targets, input_lengths, target_lengths = inputs
    leaf = log_probs.detach().requires_grad_(True)
    IMPLS[impl](leaf, targets, input_lengths, target_lengths).backward()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_pair(inputs, device: str, reps: int) -> dict[str, float]:
    """Minimum milliseconds per step of each implementation, alternating runs."""
    times: dict[str, list[float]] = {name: [] for name in IMPLS}
    for name in IMPLS:  # warm-up: compilation / cache loading, allocator
        step(name, inputs)
    start_all = time.perf_counter()
    done = 0
    while done < reps or (time.perf_counter() - start_all < 1.0 and done < 20 * reps):
        done += 1
        for name in IMPLS:
            sync(device)
            start = time.perf_counter()
            step(name, inputs)
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: min(values) for name, values in times.items()}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_cpu_peak_here(impl: str, shape: tuple[int, int, int]) -> float:
    """Peak extra resident MiB of one step (run inside a fresh subprocess)."""
    inputs = make_inputs(*shape, "cpu")
    step(impl, inputs)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident size
    step(impl, inputs)
    return (_status_kib("VmHWM") - before) / 1024


def cpu_peak_mib(impl: str, shape: tuple[int, int, int]) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="16384")
    code = (
        "import sys; sys.path.insert(0, %r); import bench_ctc as b; "
        "print(b.measure_cpu_peak_here(%r, %r))" % (os.path.dirname(os.path.abspath(__file__)), impl, shape)
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cuda_peak_mib(impl: str, inputs) -> float:
    step(impl, inputs)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(impl, inputs)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def run(device: str, reps: int, memory: bool) -> dict:
    rows = []
    for shape in SHAPES:
        inputs = make_inputs(*shape, device)
        ms = time_pair(inputs, device, reps)
        row = {"T": shape[0], "N": shape[1], "S": shape[2], "builtin_ms": ms["builtin"], "custom_ms": ms["custom"]}
        row["ratio"] = ms["custom"] / ms["builtin"]
        if memory:
            for name in IMPLS:
                row[f"{name}_mib"] = cpu_peak_mib(name, shape) if device == "cpu" else cuda_peak_mib(name, inputs)
            row["mem_ratio"] = row["custom_mib"] / max(row["builtin_mib"], 1e-9)
        rows.append(row)
    geo = math.exp(sum(math.log(r["ratio"]) for r in rows) / len(rows))
    return {
        "device": device,
        "backend": CTC_BACKENDS.choose(None, torch.device(device))[0],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "classes": N_CLASSES,
        "dtype": "float32",
        "reps": reps,
        "rows": rows,
        "geomean_ratio": geo,
        "worst_ratio": max(r["ratio"] for r in rows),
    }


def print_table(result: dict) -> None:
    print(
        f"CTC forward+backward, device={result['device']} (custom backend: {result['backend']}), torch {result['torch']}, "
        f"threads={result['threads']}, C={result['classes']}, {result['dtype']}, best of >= {result['reps']}"
    )
    has_mem = "builtin_mib" in result["rows"][0]
    head = f"{'T':>5} {'N':>3} {'S':>4} | {'built-in ms':>11} {'custom ms':>10} {'ratio':>6}"
    if has_mem:
        head += f" | {'built-in MiB':>12} {'custom MiB':>10} {'mem ratio':>9}"
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        line = f"{r['T']:>5} {r['N']:>3} {r['S']:>4} | {r['builtin_ms']:>11.2f} {r['custom_ms']:>10.2f} {r['ratio']:>6.2f}"
        if has_mem:
            line += f" | {r['builtin_mib']:>12.1f} {r['custom_mib']:>10.1f} {r['mem_ratio']:>9.2f}"
        print(line)
    print(f"geometric-mean time ratio (custom / built-in): {result['geomean_ratio']:.3f}; worst: {result['worst_ratio']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per implementation and shape")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--out", help="also write the result as JSON to this file")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("Error: --device cuda needs a CUDA GPU, but torch sees none "
                 f"(torch {torch.__version__}); run with --device cpu or on a machine with a GPU.")
    result = run(args.device, args.reps, not args.no_memory)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
