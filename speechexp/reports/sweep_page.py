"""The report of a multirun folder: the comparison table, the sweep's figures, mean ± std
over seeds, the best configuration and its command, failed jobs with their errors, and a
link to each job's own report."""

from __future__ import annotations

from pathlib import Path

from speechexp.reports import html as h
from speechexp.sweeps.comparison import Comparison, compare


def job_link(job_dir: Path, root: Path) -> str:
    """The job's ``report.html`` relative to ``root`` (its folder when it has none)."""
    rel = job_dir.relative_to(root) if job_dir.is_relative_to(root) else job_dir
    return f"{rel}/report.html" if (job_dir / "report.html").is_file() else f"{rel}/"


def sweep_figures(root: Path) -> list[Path]:
    """The sweep's figures: heatmap / line / bars first, then Optuna's."""
    found = sorted((root / "figures").glob("*.png"))
    return [p for p in found if p.name.startswith("sweep_")] + [p for p in found if not p.name.startswith("sweep_")]


def write_sweep_report(root: Path, comparison: Comparison | None = None) -> tuple[Path, Path]:
    """Write ``root/report.html`` and ``report.md`` for the multirun folder ``root``."""
    from speechexp.io import write_text_atomic  # noqa: PLC0415

    comparison = comparison or compare([root])
    rows, columns = comparison.table
    links = {row["job"]: job_link(job.folder, root) for row, job in zip(rows, comparison.jobs)}
    failed = [job for job in comparison.jobs if job.status != "completed"]
    title = f"Sweep {root.name}: {len(comparison.jobs)} jobs, {len(failed)} failed"
    # the full table is comparison.csv; here: the swept values, the score, the test metrics
    swept = sorted({k for job in comparison.jobs for k in job.swept})
    shown = [c for c in columns if c in ("job", *swept, "status", "wall_seconds")
             or c.startswith(("test/", f"{comparison.metric} ("))]
    shown_rows = [{**row, **{k: h.short_number(row.get(k)) for k in swept}} for row in rows]
    parts = [f"<p>Sorted by <b>{h.esc(comparison.metric)}</b> ({h.esc(comparison.mode)}) · folder "
             f"<code>{h.esc(root.resolve())}</code></p>"]
    if comparison.best_doc:
        best = comparison.best_doc
        std = f" ± {best['std']:.2g}" if best.get("std") is not None and best.get("n", 1) > 1 else ""
        parts.append(h.section("Best configuration",
                               f"<p>{h.esc(best['metric'])} = <b>{best['value']:.4g}{std}</b> "
                               f"(n = {best['n']}), job <code>{h.esc(Path(best['job']).name)}</code></p>",
                               h.pre(best["command"]),
                               h.details("best.yaml", h.pre((root / "best.yaml").read_text())
                                         if (root / "best.yaml").is_file() else "<p>(not written)</p>")))
    parts.append(h.section("Jobs (links open each job's report)", h.table(shown_rows, shown, links, "job"),
                           '<p class="muted">Every metric of every job: comparison.csv / comparison.md '
                           "in this folder.</p>"))
    if comparison.seed_tables is not None:
        _, _, md_rows, md_columns = comparison.seed_tables
        parts.append(h.section("Mean ± std over seeds", h.table(md_rows, md_columns)))
    if failed:
        parts.append(h.section(f"Failed jobs ({len(failed)})", "<ul>" + "".join(
            f'<li><a href="{h.esc(job_link(j.folder, root))}">{h.esc(j.folder.name)}</a> '
            f'{h.esc(" ".join(f"{k}={v}" for k, v in j.swept.items()))}: '
            f'<span class="bad">{h.esc(j.results.get("error", j.status))}</span></li>' for j in failed) + "</ul>"))
    pictures = sweep_figures(root)
    if pictures:
        parts.append(h.section("Figures", *(h.image(p) for p in pictures)))
    write_text_atomic(root / "report.html", h.page(title, parts))

    md_rows = [{**row, "job": f"[{row['job']}]({links[row['job']]})"} for row in shown_rows]
    md = [f"# {title}", "", f"Sorted by **{comparison.metric}** ({comparison.mode}).", ""]
    if comparison.best_doc:
        md += ["## Best configuration", "", f"{comparison.metric} = {comparison.best_doc['value']:.4g}", "",
               "```", comparison.best_doc["command"], "```", "", "[best.yaml](best.yaml)", ""]
    md += ["## Jobs", "", h.md_table(md_rows, shown), ""]
    if comparison.seed_tables is not None:
        md += ["## Mean ± std over seeds", "", h.md_table(comparison.seed_tables[2], comparison.seed_tables[3]), ""]
    if failed:
        md += [f"## Failed jobs ({len(failed)})", ""] + [
            f"- [{j.folder.name}]({job_link(j.folder, root)}): {j.results.get('error', j.status)}" for j in failed] + [""]
    if pictures:
        md += ["## Figures", ""] + [f"![{p.name}]({p.relative_to(root)})" for p in pictures] + [""]
    write_text_atomic(root / "report.md", "\n".join(md))
    return root / "report.html", root / "report.md"
