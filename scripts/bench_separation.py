#!/usr/bin/env python
"""Benchmark the separation study against its targets and the oracle, in one run.

Runs ``speechexp-train`` as ``make train`` does (defaults) and with the seed's
settings (``experiment=minor2_q1``), each in a fresh process with its wall time, and
computes the oracle ideal-ratio-mask SI-SNR on the same test split as the reference
ceiling. Prints a table; targets: default run ≥ 30 dB test SI-SNR within 60 s.

    .venv/bin/python scripts/bench_separation.py [--json] [--extra "override ..."]
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

from speechexp.data.sinusoids import SinusoidPreparer
from speechexp.io import read_wav

TARGET_DB, TARGET_SECONDS = 30.0, 60.0


def oracle_irm_si_snr(data_dir: Path, n_fft: int = 256, hop: int = 64) -> tuple[float, float]:
    """(oracle IRM SI-SNR, mixture SI-SNR) in dB over the default dataset's test split."""
    folder = SinusoidPreparer().prepare(data_dir)
    with open(folder / "metadata.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    mixture = torch.stack([torch.from_numpy(read_wav(folder / r["mixture"])) for r in rows])
    sources = torch.stack([torch.stack([torch.from_numpy(read_wav(folder / r[c])) for c in ("source1", "source2")])
                           for r in rows])
    window = torch.hann_window(n_fft)
    spec = torch.stft(mixture, n_fft, hop, window=window, return_complex=True)
    refs = torch.stft(sources.flatten(0, 1), n_fft, hop, window=window, return_complex=True)
    refs = refs.view(*sources.shape[:2], *refs.shape[1:]).abs()
    mask = refs / refs.sum(1, keepdim=True).clamp_min(1e-8)
    est = torch.istft((mask * spec.unsqueeze(1)).flatten(0, 1), n_fft, hop, window=window,
                      length=mixture.shape[-1]).view_as(sources)
    mix = mixture.unsqueeze(1).expand_as(sources)
    return (scale_invariant_signal_noise_ratio(est, sources).mean().item(),
            scale_invariant_signal_noise_ratio(mix, sources).mean().item())


def timed_run(label: str, overrides: list[str], data_dir: Path, out: Path) -> dict:
    run_dir = out / label
    command = [sys.executable, "-m", "speechexp.train", f"hydra.run.dir={run_dir}",
               f"paths.data_dir={data_dir}", "trainer.enable_progress_bar=false", *overrides]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
    return {"run": label, "overrides": " ".join(overrides) or "(defaults)", "wall_s": wall,
            "test/si_snr": results.get("test/si_snr"), "test/si_snri": results.get("test/si_snri"),
            "status": results.get("status", "failed")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--extra", action="append", default=[],
                        help="another run to time: a quoted list of overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data_dir = tmp / "data"
        oracle, mixture = oracle_irm_si_snr(data_dir)  # also prepares the data: runs time training only
        runs = [timed_run("default", [], data_dir, tmp), timed_run("minor2_q1", ["experiment=minor2_q1"], data_dir, tmp)]
        runs += [timed_run(f"extra{i}", shlex.split(extra), data_dir, tmp) for i, extra in enumerate(args.extra)]
    for run in runs:
        run["vs_oracle_db"] = None if run["test/si_snr"] is None else run["test/si_snr"] - oracle
    if args.json:
        print(json.dumps({"oracle_irm_db": oracle, "mixture_db": mixture, "runs": runs}, indent=2))
        return 0
    print(f"reference: oracle IRM {oracle:.2f} dB, unprocessed mixture {mixture:.2f} dB (test split)")
    print(f"{'run':<10} {'test SI-SNR dB':>14} {'SI-SNRi dB':>10} {'vs oracle':>9} {'wall s':>7} {'wall/60s':>8}  overrides")
    for run in runs:
        snr = "-" if run["test/si_snr"] is None else f"{run['test/si_snr']:.2f}"
        snri = "-" if run["test/si_snri"] is None else f"{run['test/si_snri']:.2f}"
        gap = "-" if run["vs_oracle_db"] is None else f"{run['vs_oracle_db']:+.2f}"
        print(f"{run['run']:<10} {snr:>14} {snri:>10} {gap:>9} {run['wall_s']:>7.1f} "
              f"{run['wall_s'] / TARGET_SECONDS:>8.2f}  {run['overrides']}")
    default = runs[0]
    ok = (default["test/si_snr"] or -1e9) >= TARGET_DB and default["wall_s"] <= TARGET_SECONDS
    print(f"target (default run ≥ {TARGET_DB:g} dB in ≤ {TARGET_SECONDS:g} s): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
