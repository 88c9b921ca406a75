"""The real-voices ablation table from ``scripts/ablate_voices.sh OUT_DIR``'s output:

    .venv/bin/python scripts/ablation_table.py OUT_DIR [--held-out ked]

One markdown row per step, in the order run: the held-out voice's CER and UAR and the real
recordings' CER (with its 95 % interval), WER and CER per source (``bench_real_voices.py``'s
rows), the step's own test CER / UAR (its ``results.json``), its wall time and its overrides.
Each step ``NAME`` left ``NAME/results.json``, ``NAME.bench.json``, ``NAME.overrides`` and
``NAME.wall`` (seconds) in OUT_DIR, and ``steps`` lists the names in order; a step that has not
finished yet is shown with dashes where its figures would be.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def figure(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def bench_sets(bench: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``bench_real_voices.py --json`` rows by their set name (``ked``, ``real-dev``, ``real-dev/tuxpaint``...)."""
    return {} if bench is None else {row["set"]: row for row in bench["rows"]}


def step_row(out: Path, step: str, held_out: str, real: str, sources: list[str]) -> str:
    sets = bench_sets(read_json(out / f"{step}.bench.json"))
    results = read_json(out / step / "results.json") or {}
    voice, people = sets.get(held_out, {}), sets.get(real, {})
    interval = (f"{people['cer_low']:.3f} to {people['cer_high']:.3f}"
                if people.get("cer_low") is not None else "—")
    overrides_file = out / f"{step}.overrides"
    overrides = overrides_file.read_text().strip() if overrides_file.is_file() else ""
    wall_file = out / f"{step}.wall"
    wall = wall_file.read_text().strip() if wall_file.is_file() else "—"
    cells = [step, figure(voice.get("cer")), figure(voice.get("uar")), figure(people.get("cer")), interval,
             figure(people.get("wer")), *(figure(sets.get(f"{real}/{source}", {}).get("cer")) for source in sources),
             f"{figure(results.get('test/cer'))} / {figure(results.get('test/uar'))}", wall, f"`{overrides}`"]
    return "| " + " | ".join(cells) + " |"


def table(out: Path, held_out: str = "ked") -> str:
    """The markdown table of every step listed in ``out/steps``."""
    steps = (out / "steps").read_text().split()
    all_sets = set().union(*(bench_sets(read_json(out / f"{step}.bench.json")) for step in steps))
    real = next((name for name in sorted(all_sets) if name != held_out and "/" not in name), "real")
    sources = sorted(name.split("/", 1)[1] for name in all_sets if name.startswith(f"{real}/"))
    header = (["step", f"{held_out} CER", f"{held_out} UAR", f"{real} CER", "95 % interval", f"{real} WER"]
              + [f"{source} CER" for source in sources] + ["own test CER / UAR", "wall s", "overrides"])
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]
    return "\n".join(lines + [step_row(out, step, held_out, real, sources) for step in steps])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="scripts/ablate_voices.sh's OUT_DIR")
    parser.add_argument("--held-out", default="ked", help="the held-out voice's folder name in OUT_DIR")
    args = parser.parse_args()
    if not (args.out / "steps").is_file():
        raise SystemExit(f"{args.out} has no 'steps' file; pass the OUT_DIR that scripts/ablate_voices.sh wrote.")
    print(table(args.out, args.held_out))


if __name__ == "__main__":
    main()
