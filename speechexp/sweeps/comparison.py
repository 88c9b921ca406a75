"""Compare the jobs of one or more run / multirun folders: a table, figures and the best config.

Every folder holding a ``results.json`` is a job (``.superseded/`` ones excepted). Its
overrides come from its ``run.json`` (else ``.hydra/overrides.yaml``), its task's metric and
direction from its ``config.yaml`` (``task.monitor``, ``task.mode``). :func:`write_comparison` writes, into
the first folder:

- ``comparison.csv`` / ``comparison.md``: one row per job, best first by the metric (failed
  jobs last, with their error); columns: the overrides that differ between jobs, every
  final metric, status, error, wall time;
- with repeated seeds, ``comparison_by_seed.csv`` / ``.md``: mean and std over seeds
  (``<metric>_mean``, ``<metric>_std``) of the ranking metric and of every final
  ``test/`` metric, and ``n``, per configuration (the other overrides);
- ``figures/sweep_heatmap.png`` for two swept parameters (e.g. units x learning rate; a
  configuration that failed says so, one no job had says "not run"),
  ``figures/sweep_line.png`` for one (error bars with seeds), else a bar per configuration;
  for an Optuna study stored in the folder (``optuna.db``), Optuna's own plots instead
  (``figures/optuna_history.png``, ``optuna_importances.png``, ``optuna_slice.png``,
  ``optuna_contour.png``): its sampled points are no grid;
- ``best.yaml``: the best configuration as overrides that ``speechexp-train`` accepts,
  with a ready command line.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, stdev

import yaml

from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic, write_text_atomic
from speechexp.runs.plan import CONFIG_FILE, RESULTS_FILE, SUPERSEDED_DIR, is_cosmetic, read_results, run_overrides

# overrides never shown as swept parameters nor repeated in the best configuration
NOT_CONFIGURATION = ("hparams_search",)


@dataclass
class Job:
    """One run dir: its overrides, results and the metric it is judged by."""

    folder: Path
    overrides: list[str]
    results: dict
    monitor: str = "val/loss"
    mode: str = "min"
    swept: dict[str, str] = field(default_factory=dict)  # the overrides that differ between jobs

    @property
    def status(self) -> str:
        return str(self.results.get("status", "unknown"))

    def score(self, metric: str) -> float | None:
        """The metric's best epoch value when recorded (``<metric>_best``), else its final value."""
        for key in (f"{metric}_best", metric):
            value = self.results.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                return float(value)
        return None


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def find_jobs(folders: list[str | Path]) -> list[Job]:
    """Every job under ``folders`` (each a run dir or a multirun folder)."""
    jobs = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise SpeechexpError(f"{folder} is not a folder; pass run or multirun folders (outputs/<task>/...).")
        paths = sorted(p for p in folder.rglob(RESULTS_FILE) if SUPERSEDED_DIR not in p.relative_to(folder).parts)
        if not paths:
            raise SpeechexpError(f"No {RESULTS_FILE} under {folder}; pass a run or multirun folder.")
        for path in paths:
            results = read_results(path)
            task = (_read_yaml(path.parent / CONFIG_FILE) or {}).get("task") or {}
            jobs.append(Job(path.parent, run_overrides(path.parent), results,
                            monitor=task.get("monitor", "val/loss"), mode=task.get("mode", "min")))
    _mark_swept(jobs)
    return jobs


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _mark_swept(jobs: list[Job]) -> None:
    """Set each job's ``swept``: its values of the override keys that differ between jobs."""
    def configuration(job: Job) -> dict[str, str]:
        return {_key(o): o.split("=", 1)[1] if "=" in o else "" for o in job.overrides
                if not is_cosmetic(_key(o)) and _key(o) not in NOT_CONFIGURATION}
    configs = [configuration(job) for job in jobs]
    keys = sorted({k for c in configs for k in c})
    varying = [k for k in keys if len({c.get(k) for c in configs}) > 1]
    for job, config in zip(jobs, configs):
        job.swept = {k: config.get(k, "(default)") for k in varying}


def ranked(jobs: list[Job], metric: str, mode: str) -> list[Job]:
    """Best first by ``metric`` in direction ``mode``; jobs without a score last."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted(jobs, key=lambda j: (j.score(metric) is None, sign * (j.score(metric) or 0.0), str(j.folder)))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _order(values: list[str]) -> list[str]:
    """Distinct values, numerically sorted when they are all numbers."""
    distinct = sorted(set(values), key=str)
    numbers = [_number(v) for v in distinct]
    return [v for _, v in sorted(zip(numbers, distinct))] if None not in numbers else distinct


@dataclass
class Group:
    """The jobs of one configuration (its seeds), with the metric's mean, std and count."""

    config: dict[str, str]
    jobs: list[Job]
    values: list[float]

    @property
    def mean(self) -> float | None:
        return mean_and_std(self.values)[0]

    @property
    def std(self) -> float | None:
        return mean_and_std(self.values)[1]


def mean_and_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std of ``values`` (std 0 for one value; ``None`` for none)."""
    if not values:
        return None, None
    return mean(values), (stdev(values) if len(values) > 1 else 0.0)


def by_configuration(jobs: list[Job], metric: str, mode: str) -> list[Group]:
    """Jobs grouped by their swept overrides other than ``seed``, best mean first."""
    groups: dict[tuple, Group] = {}
    for job in jobs:
        config = {k: v for k, v in job.swept.items() if k != "seed"}
        group = groups.setdefault(tuple(sorted(config.items())), Group(config, [], []))
        group.jobs.append(job)
        if job.status == "completed" and job.score(metric) is not None:
            group.values.append(job.score(metric))
    sign = -1.0 if mode == "max" else 1.0
    return sorted(groups.values(), key=lambda g: (g.mean is None, sign * (g.mean or 0.0)))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def job_rows(jobs: list[Job], metric: str, root: Path) -> tuple[list[dict], list[str]]:
    """Table rows (one per job) and their columns."""
    metric_keys = sorted({k for job in jobs for k in job.results if "/" in k})
    swept_keys = sorted({k for job in jobs for k in job.swept})
    score = f"{metric} (best epoch)"
    rows = []
    for job in jobs:
        name = str(job.folder.relative_to(root)) if job.folder.is_relative_to(root) else str(job.folder)
        rows.append({"job": name, **job.swept, score: job.score(metric), **{k: job.results.get(k) for k in metric_keys},
                     "status": job.status, "error": job.results.get("error", ""),
                     "wall_seconds": job.results.get("wall_seconds")})
    return rows, ["job", *swept_keys, score, *metric_keys, "status", "error", "wall_seconds"]


def best_overrides(job: Job) -> list[str]:
    """The job's overrides as ``speechexp-train`` accepts them alone (no Hydra or sweep presets)."""
    return [o for o in job.overrides if not _key(o).startswith("hydra.") and _key(o) not in NOT_CONFIGURATION]


def final_metrics(jobs: list[Job]) -> list[str]:
    """The ``test/`` metrics the completed jobs report (timings excluded), in name order."""
    names = {k for j in jobs if j.status == "completed" for k, v in j.results.items()
             if k.startswith("test/") and isinstance(v, (int, float)) and not k.endswith(("_s", "seconds"))}
    return sorted(names)


def seed_summary(groups: list[Group], metric: str) -> tuple[list[dict], list[str], list[dict], list[str]]:
    """Per configuration: mean, std and count over seeds of the ranking metric and of every
    final test metric. Returns CSV rows and columns (``<m>_mean``, ``<m>_std``) and
    Markdown rows and columns (one ``mean ± std`` cell per metric)."""
    others = [m for m in final_metrics([j for g in groups for j in g.jobs]) if m != metric]
    keys = sorted({k for g in groups for k in g.config})
    rows, md_rows = [], []
    for group in groups:
        row = {**group.config, f"{metric}_mean": group.mean, f"{metric}_std": group.std}
        md_row = {**group.config, metric: _mean_std(group.mean, group.std)}
        for name in others:
            values = [float(j.results[name]) for j in group.jobs if j.status == "completed"
                      and isinstance(j.results.get(name), (int, float)) and math.isfinite(j.results[name])]
            m, sd = mean_and_std(values)
            row.update({f"{name}_mean": m, f"{name}_std": sd})
            md_row[name] = _mean_std(m, sd)
        row.update({"n": len(group.values), "jobs": len(group.jobs)})
        md_row.update({"n": len(group.values), "jobs": len(group.jobs)})
        rows.append(row)
        md_rows.append(md_row)
    columns = [*keys, f"{metric}_mean", f"{metric}_std", *(f"{n}_{s}" for n in others for s in ("mean", "std")),
               "n", "jobs"]
    return rows, columns, md_rows, [*keys, metric, *others, "n", "jobs"]


def _mean_std(m: float | None, sd: float | None) -> str:
    return "" if m is None else f"{m:.4g} ± {sd:.2g}"


@dataclass
class Comparison:
    """The comparison of some jobs: their table, seed statistics and best configuration
    (computed by :func:`compare`; ``files`` is filled in by :func:`write_comparison`)."""

    jobs: list[Job]
    metric: str
    mode: str
    groups: list[Group]
    table: tuple[list[dict], list[str]]
    seed_tables: tuple[list[dict], list[str], list[dict], list[str]] | None
    best: Job | None
    best_doc: dict | None
    files: list[Path] = field(default_factory=list)

    @property
    def best_command(self) -> str | None:
        return self.best_doc["command"] if self.best_doc else None


# how a metric's name says which way is better, for a --metric other than the task's monitor
HIGHER_IS_BETTER = ("snr", "sdr", "uar", "accuracy")  # anywhere in the name (si_snr, sdr_improvement)
HIGHER_AT_THE_END = ("score", "f1", "per_s")            # items_per_s
LOWER_IS_BETTER = ("loss", "cer", "wer", "per", "ctc", "_ce", "error", "_s", "seconds")


def direction(metric: str, job: Job) -> str:
    """``min`` or ``max`` for ``metric``: the task's own mode for its monitor, else what the
    name says (``test/cer`` min, ``test/uar`` max); refused when the name says neither."""
    if metric == job.monitor:
        return job.mode
    parts = metric.split("/")
    name = parts[1] if len(parts) > 1 else parts[0]  # test/cer/festival:ked is a CER of one source
    if any(word in name for word in HIGHER_IS_BETTER) or name.endswith(HIGHER_AT_THE_END):
        return "max"
    if name.endswith(LOWER_IS_BETTER) or name.startswith(("cer", "wer", "per")):
        return "min"
    raise SpeechexpError(f"Which way {metric} is better is not known from its name; pass --mode min or --mode max.")


def compare(folders: list[str | Path], metric: str | None = None, mode: str | None = None) -> Comparison:
    """Rank the jobs under ``folders``, group their seeds and pick the best configuration;
    ``metric``/``mode`` default to the jobs' task config. Writes nothing."""
    jobs = find_jobs(folders)
    if metric is not None and not any(metric in j.results or f"{metric}_best" in j.results for j in jobs):
        known = sorted({k.removesuffix("_best") for j in jobs for k in j.results if k.startswith(("val/", "test/"))})
        raise SpeechexpError(f"No job recorded the metric {metric}; pass --metric with one they did "
                             f"({', '.join(known[:8]) or 'none recorded'}{', ...' if len(known) > 8 else ''}).")
    metric, mode = metric or jobs[0].monitor, mode or direction(metric or jobs[0].monitor, jobs[0])
    jobs = ranked(jobs, metric, mode)
    groups = by_configuration(jobs, metric, mode)
    seeds = any("seed" in j.swept for j in jobs)
    best_group = next((g for g in groups if g.values), None)
    best, best_doc = None, None
    if best_group is not None:
        best = ranked([j for j in best_group.jobs if j.status == "completed"], metric, mode)[0]
        overrides = [o for o in best_overrides(best) if not (seeds and _key(o) == "seed")]
        best_doc = {"metric": metric, "mode": mode, "value": best_group.mean, "std": best_group.std,
                    "n": len(best_group.values), "job": str(best.folder), "overrides": overrides,
                    "command": shlex.join(["speechexp-train", *overrides])}
    return Comparison(jobs, metric, mode, groups, job_rows(jobs, metric, Path(folders[0])),
                      seed_summary(groups, metric) if seeds else None, best, best_doc)


def write_comparison(folders: list[str | Path], metric: str | None = None, mode: str | None = None) -> Comparison:
    """:func:`compare` the jobs under ``folders`` and write the tables, figures and best
    config into the first folder."""
    comparison, root = compare(folders, metric, mode), Path(folders[0])
    metric, mode = comparison.metric, comparison.mode
    rows, columns = comparison.table
    title = f"{len(comparison.jobs)} jobs, sorted by {metric} ({mode})"
    files = [write_csv_atomic(root / "comparison.csv", rows, columns),
             write_text_atomic(root / "comparison.md", f"# Comparison: {title}\n\n" + markdown(rows, columns))]
    if comparison.seed_tables is not None:
        agg_rows, agg_columns, md_rows, md_columns = comparison.seed_tables
        files.append(write_csv_atomic(root / "comparison_by_seed.csv", agg_rows, agg_columns))
        files.append(write_text_atomic(root / "comparison_by_seed.md",
                                       f"# Mean ± std over seeds, sorted by {metric} ({mode})\n\n"
                                       + markdown(md_rows, md_columns)))
    files += _figures(comparison.groups, metric, root / "figures", comparison.seed_tables is not None, root)
    if comparison.best_doc is not None:
        files.append(write_text_atomic(root / "best.yaml", yaml.safe_dump(comparison.best_doc, sort_keys=False)))
    comparison.files = files
    return comparison


def _figures(groups: list[Group], metric: str, folder: Path, seeds: bool, root: Path | None = None) -> list[Path]:
    from speechexp.sweeps import figures as plots  # noqa: PLC0415  (matplotlib is slow to import)

    scored = [g for g in groups if g.values]
    keys = sorted({k for g in groups for k in g.config})
    if not scored or not keys:
        return []
    study = plots.plot_optuna_study(root, folder) if root is not None else []
    if study:  # an Optuna study: sampled points, not a grid
        return study
    if len(keys) == 2:
        rows, cols = (_order([g.config[k] for g in groups]) for k in keys)
        table = {(g.config[keys[0]], g.config[keys[1]]): g.mean for g in scored}
        failed = {(g.config[keys[0]], g.config[keys[1]]) for g in groups if not g.values}
        return [plots.plot_heatmap(keys, rows, cols, table, metric, folder / "sweep_heatmap.png", failed)]
    if len(keys) == 1:
        order = _order([g.config[keys[0]] for g in scored])
        points = {g.config[keys[0]]: (g.mean, g.std if seeds else None) for g in scored}
        return [plots.plot_line(keys[0], order, points, metric, folder / "sweep_line.png")]
    labels = [" ".join(f"{k}={v}" for k, v in g.config.items()) for g in scored]
    return [plots.plot_bars(labels, [g.mean for g in scored], [g.std for g in scored] if seeds else None,
                            metric, folder / "sweep_bars.png")]
