"""The report of one run dir: what was run, its final metrics, curves, figures and a
sample of its outputs (a separated example to play, or test predictions), as
``report.html`` (self-contained) and ``report.md`` (relative links)."""

from __future__ import annotations

import csv
from pathlib import Path

from speechexp.reports import html as h
from speechexp.runs.plan import read_json, read_results, run_overrides

MAX_FIGURES = 12      # PNGs embedded from figures/ (curves and confusion matrix first)
MAX_CLIPS = 5         # WAVs embedded (mixture, 2 estimates, 2 references)
MAX_PREDICTIONS = 10  # rows of test_predictions.csv shown
FIRST_FIGURES = ("curves.png", "emotion_confusion.png", "ctc_alignment.png")


def _csv_rows(path: Path, limit: int) -> tuple[list[dict], list[str]]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [row for _, row in zip(range(limit), reader)]
            return rows, list(reader.fieldnames or [])
    except OSError:
        return [], []


def figures(run_dir: Path) -> list[Path]:
    """The run's PNG figures, the curves and the confusion matrix first, one test example's
    comparison (the others are in ``figures/``), at most :data:`MAX_FIGURES`."""
    found = sorted((run_dir / "figures").glob("*.png"))
    first = [p for n in FIRST_FIGURES for p in found if p.name == n]
    tests = [p for p in found if p.name.startswith("test_") and p.name.endswith("_separated_vs_truth.png")]
    rest = [p for p in found if p not in first and p not in tests]
    return (first + rest + tests[:1])[:MAX_FIGURES]


def _dataset_files(run_dir: Path, results: dict, example_id: str) -> dict[str, Path]:
    """The example's mixture and reference WAVs in the run's dataset folder, by column."""
    dataset = Path(str(results.get("dataset_dir", "")))
    rows, _ = _csv_rows(dataset / "metadata.csv", 100_000) if results.get("dataset_dir") else ([], [])
    row = next((r for r in rows if r.get("id") == example_id), None)
    if row is None:
        return {}
    return {k: dataset / v for k, v in row.items()
            if (k == "mixture" or k.startswith("source")) and v and (dataset / v).is_file()}


def clips(run_dir: Path, predictions: list[dict], results: dict | None = None) -> list[tuple[Path, str]]:
    """Audio to embed: the first separated test example (mixture, each estimate, each
    reference), or the first predicted utterances with their reference and hypothesis."""
    separated = sorted((run_dir / "separated").glob("*.wav"))
    if separated:
        first = separated[0].name.rsplit("_source", 1)[0]
        references = _dataset_files(run_dir, results or {}, first)
        out = [(references["mixture"], f"{first}: mixture")] if "mixture" in references else []
        for path in (p for p in separated if p.name.startswith(first + "_source")):
            source = path.stem.rsplit("_", 1)[-1]
            out.append((path, f"{first}: estimated {source}"))
            if source in references:
                out.append((references[source], f"{first}: reference {source}"))
        return out[:MAX_CLIPS]
    out = []
    for row in predictions:
        path = Path(row.get("path", ""))
        if path.is_file() and len(out) < 2:
            out.append((path, f"“{row.get('text', '')}” → “{row.get('hypothesis', '')}” "
                              f"({row.get('emotion', '')} → {row.get('predicted_emotion', '')})"))
    return out


STAGES = ("test", "val", "train")


def final_metrics(results: dict) -> tuple[list[dict], list[str]]:
    """The final metrics, one row per metric name and one column per stage (test, val,
    train, then any other), e.g. ``{"metric": "si_snr", "test": 5.2, "val": 5.7, "train": 4.0}``;
    timings and throughput last."""
    values = {k: v for k, v in results.items() if "/" in k and not k.startswith("/")}
    stages = [s for s in STAGES if any(k.startswith(s + "/") for k in values)]
    stages += sorted({k.split("/", 1)[0] for k in values} - set(stages))
    names = sorted({k.split("/", 1)[1] for k in values},
                   key=lambda n: (n.endswith(("_s", "seconds")), n))
    rows = [{"metric": name, **{stage: values.get(f"{stage}/{name}") for stage in stages}} for name in names]
    return rows, ["metric", *stages]


def write_run_report(run_dir: Path) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``report.md``; return their paths."""
    from speechexp.io import write_text_atomic  # noqa: PLC0415

    results, run = read_results(run_dir / "results.json"), read_json(run_dir / "run.json")
    overrides = run_overrides(run_dir)
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    status = str(results.get("status", "unknown"))
    predictions, prediction_columns = _csv_rows(run_dir / "test_predictions.csv", MAX_PREDICTIONS)
    metric_rows, metric_columns = final_metrics(results)
    pictures, audio = figures(run_dir), clips(run_dir, predictions, results)
    title = f"Run {run_dir.name}: {status}"

    status_line = (f'<p>Status: <b class="{"ok" if status == "completed" else "bad"}">{h.esc(status)}</b>'
                   f" · {results.get('wall_seconds', '?')} s · run id {h.esc(run.get('run_id', '?'))}"
                   f" · folder <code>{h.esc(run_dir.resolve())}</code></p>")
    parts = [status_line]
    if results.get("error"):
        parts.append(h.section("Error", h.pre(str(results["error"]))))
    parts.append(h.section("Command", h.pre(run.get("command", "(unknown)")),
                           "<p>Overrides:</p>" + h.pre("\n".join(map(str, overrides)) or "(none)")))
    if config_text:
        parts.append(h.details("Resolved config (config.yaml)", h.pre(config_text)))
    metrics_part = h.section("Final metrics", h.table(metric_rows, metric_columns) if metric_rows
                             else "<p>No metrics recorded.</p>")
    parts.append(metrics_part)
    if audio:
        parts.append(h.section("Listen", h.clips(h.audio(path, caption) for path, caption in audio)))
    if predictions:
        parts.append(h.section(f"Test predictions (first {len(predictions)})",
                               h.table(predictions, [c for c in prediction_columns if c != "path"])))
    curves = [p for p in pictures if p.name == "curves.png"]
    if curves:
        parts.insert(parts.index(metrics_part) + 1, h.section("Curves", h.image(curves[0], "figures/curves.png: "
                                                                   "per step and per epoch, best epoch marked")))
    others = [p for p in pictures if p.name != "curves.png"]
    if others:
        parts.append(h.section("Figures", *(h.image(p, f"figures/{p.name}") for p in others)))
    write_text_atomic(run_dir / "report.html", h.page(title, parts))

    md = [f"# {title}", "", f"Status: **{status}**, {results.get('wall_seconds', '?')} s", ""]
    if results.get("error"):
        md += ["## Error", "", "```", str(results["error"]), "```", ""]
    md += ["## Command", "", "```", run.get("command", "(unknown)"), "```", "",
           "Overrides: " + (" ".join(f"`{o}`" for o in overrides) or "(none)"), "",
           "Resolved config: [config.yaml](config.yaml)", "", "## Final metrics", "",
           h.md_table(metric_rows, metric_columns) if metric_rows else "No metrics recorded.", ""]
    if curves:
        md += ["## Curves", "", f"![curves.png]({_rel(curves[0], run_dir)})", ""]
    if audio:
        md += ["## Listen", ""] + [f"- [{caption}]({_rel(path, run_dir)})" for path, caption in audio] + [""]
    if predictions:
        md += [f"## Test predictions (first {len(predictions)})", "",
               h.md_table(predictions, [c for c in prediction_columns if c != "path"]), ""]
    if others:
        md += ["## Figures", ""] + [f"![{p.name}]({_rel(p, run_dir)})" for p in others] + [""]
    write_text_atomic(run_dir / "report.md", "\n".join(md))
    return run_dir / "report.html", run_dir / "report.md"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
