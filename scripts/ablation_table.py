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
from pathlib import Path
from typing import Any

from bench_real_voices import interval_text  # scripts/ is on the path of a script run from it

from speechexp.runs.plan import read_json


def figure(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def bench_sets(out: Path, step: str) -> dict[str, dict[str, Any]]:
    """The step's ``bench_real_voices.py --json`` rows by their set name (``ked``, ``real-dev``,
    ``real-dev/tuxpaint``...); empty while the step has not been read."""
    return {row["set"]: row for row in read_json(out / f"{step}.bench.json").get("rows", [])}


def text_of(path: Path, missing: str) -> str:
    return path.read_text().strip() if path.is_file() else missing


def step_row(out: Path, step: str, sets: dict[str, dict[str, Any]], held_out: str, real: str,
             sources: list[str]) -> str:
    results = read_json(out / step / "results.json")
    voice, people = sets.get(held_out, {}), sets.get(real, {})
    cells = [step, figure(voice.get("cer")), figure(voice.get("uar")), figure(people.get("cer")),
             interval_text(people.get("cer_low"), people.get("cer_high")), figure(people.get("wer")),
             *(figure(sets.get(f"{real}/{source}", {}).get("cer")) for source in sources),
             f"{figure(results.get('test/cer'))} / {figure(results.get('test/uar'))}",
             text_of(out / f"{step}.wall", "—"), f"`{text_of(out / f'{step}.overrides', '')}`"]
    return "| " + " | ".join(cells) + " |"


def table(out: Path, held_out: str = "ked") -> str:
    """The markdown table of every step listed in ``out/steps``."""
    sets = {step: bench_sets(out, step) for step in (out / "steps").read_text().split()}
    names = set().union(*sets.values())
    real = next((name for name in sorted(names) if name != held_out and "/" not in name), "real")
    sources = sorted(name.split("/", 1)[1] for name in names if name.startswith(f"{real}/"))
    header = (["step", f"{held_out} CER", f"{held_out} UAR", f"{real} CER", "95 % interval", f"{real} WER"]
              + [f"{source} CER" for source in sources] + ["own test CER / UAR", "wall s", "overrides"])
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]
    return "\n".join(lines + [step_row(out, step, rows, held_out, real, sources) for step, rows in sets.items()])


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
