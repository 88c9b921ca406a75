"""What separating long recordings in windows costs: SI-SNR of 10 s recordings at 44.1 kHz
separated whole and in overlapping windows, by the default separation model.

    .venv/bin/python scripts/bench_long_separation.py [--ckpt CKPT] [--recordings 5]

Without ``--ckpt`` it first trains ``speechexp-train experiment=separation`` (the default,
about 20 s) into a scratch folder. Each recording is a mixture of the training data's
kinds of sources (a sinusoid in 100-900 Hz and one in 1100-3500 Hz, random amplitudes
and phases) made at 44.1 kHz; in the ``changing`` set both sources change frequency every
second (so windows must keep the sources' order across a change). The model works at
8 kHz: :meth:`SeparationModel.separate` resamples in and out, so SI-SNR is measured at the
input's 44.1 kHz against the true sources, the best source order per recording.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RATE, SECONDS = 44100, 10.0


def si_snr(estimate: np.ndarray, reference: np.ndarray) -> float:
    estimate, reference = estimate - estimate.mean(), reference - reference.mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    return float(10 * np.log10((target @ target) / ((estimate - target) @ (estimate - target) + 1e-12)))


def best_si_snr(estimates: np.ndarray, references: np.ndarray) -> float:
    """Mean SI-SNR over sources under the best source order."""
    return max(np.mean([si_snr(estimates[j], references[i]) for i, j in enumerate(order)])
               for order in itertools.permutations(range(len(references))))


def recording(rng: np.random.Generator, changing: bool) -> np.ndarray:
    """``[2, samples]`` sources at 44.1 kHz (the mixture is their sum)."""
    t = np.arange(int(RATE * SECONDS)) / RATE
    segments = int(SECONDS) if changing else 1
    sources = np.zeros((2, t.size))
    for k, (low, high) in enumerate(((100, 900), (1100, 3500))):
        phase = 0.0
        amplitude = rng.uniform(0.2, 0.5)
        for s in range(segments):
            part = slice(int(s * t.size / segments), int((s + 1) * t.size / segments))
            freq = rng.uniform(low, high)
            sources[k, part] = amplitude * np.sin(2 * np.pi * freq * (t[part] - t[part][0]) + phase)
            phase = 2 * np.pi * freq * (t[part][-1] - t[part][0] + 1 / RATE) + phase  # continuous
    return sources.astype(np.float32)


def train_default(folder: Path) -> Path:
    run_dir = folder / "run"
    subprocess.run([sys.executable, "-m", "speechexp.train", "experiment=separation", f"paths.data_dir={folder}/data",
                    f"hydra.run.dir={run_dir}", "logger=csv", "trainer.enable_progress_bar=false"], check=True,
                   capture_output=True)
    results = json.loads((run_dir / "results.json").read_text())
    print(f"trained: test SI-SNR {results['test/si_snr']:.2f} dB (1 s test mixtures at 8 kHz)")
    return Path(results["best_checkpoint"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, help="a separation checkpoint (default: train one)")
    parser.add_argument("--recordings", type=int, default=5)
    args = parser.parse_args()
    from speechexp import load_model  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as scratch:
        model = load_model(args.ckpt or train_default(Path(scratch)))
        settings = {"whole": dict(chunk_seconds=1e9), "windows 4 s, overlap 0.5 s (default)": {},
                    "windows 1 s, overlap 0.25 s": dict(chunk_seconds=1.0, overlap_seconds=0.25),
                    "windows 1 s, no overlap": dict(chunk_seconds=1.0, overlap_seconds=0.0)}
        print(f"{args.recordings} recordings of {SECONDS:g} s at {RATE} Hz per set; mean SI-SNR (dB)")
        print("| set | " + " | ".join(settings) + " |")
        print("| --- |" + " ---: |" * len(settings))
        for changing in (False, True):
            rng = np.random.default_rng(0)
            cells = []
            for options in settings.values():
                scores = []
                for sources in (recording(rng, changing) for _ in range(args.recordings)):
                    estimates = model.separate(sources.sum(0), RATE, **options)
                    assert estimates.shape == sources.shape
                    scores.append(best_si_snr(estimates, sources))
                rng = np.random.default_rng(0)  # the same recordings for every setting
                cells.append(f"{np.mean(scores):.2f}")
            print(f"| {'changing every 1 s' if changing else 'steady'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
