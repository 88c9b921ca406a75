"""Sweep figures: a heatmap over two parameters, a line over one, bars otherwise; for an
Optuna study stored beside its jobs, Optuna's own plots instead.

Parameter values arrive as the strings of the overrides; numeric ones are placed on
numeric axes, logarithmic where the values are log-spaced (e.g. 3e-4, 1e-3, 3e-3). A
heatmap cell says "failed" when its configuration ran and failed, "not run" when no job
had it (a grid that was cut short, or points a search never sampled).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib
import matplotlib.patches

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechexp.viz.spectrogram import save_figure  # noqa: E402


def numeric(values: list[str]) -> np.ndarray | None:
    """The values as floats, or ``None`` when any is not a number."""
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return None


def log_spaced(values: np.ndarray | None) -> bool:
    """Positive values spanning at least 4x that are more evenly spaced on a log scale than
    on a linear one (two values: at least 10x apart)."""
    if values is None:
        return False
    ordered = np.unique(values)
    if len(ordered) < 2 or ordered[0] <= 0 or ordered[-1] / ordered[0] < 4:
        return False
    if len(ordered) == 2:
        return bool(ordered[-1] / ordered[0] >= 10)

    def unevenness(x: np.ndarray) -> float:
        steps = np.diff(x)
        return float(np.std(steps) / np.mean(steps))
    return unevenness(np.log(ordered)) < unevenness(ordered)


def cell_edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Edges of cells centred on sorted ``values`` (geometric midpoints on a log axis)."""
    x = np.log(values) if log else values.astype(float)
    if len(x) == 1:
        edges = np.array([x[0] - 0.5, x[0] + 0.5])
    else:
        mid = (x[1:] + x[:-1]) / 2
        edges = np.concatenate([[2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]])
    return np.exp(edges) if log else edges


def _axis(ax, which: str, key: str, values: list[str]) -> tuple[np.ndarray, bool]:
    """Set up one heatmap axis; return the cell edges and whether it is logarithmic."""
    numbers = numeric(values)
    log = log_spaced(numbers)
    if numbers is None:
        edges = np.arange(len(values) + 1) - 0.5
        getattr(ax, f"set_{which}ticks")(range(len(values)), values)
    else:
        edges = cell_edges(numbers, log)
        if log:
            getattr(ax, f"set_{which}scale")("log")
        getattr(ax, f"set_{which}ticks")(numbers, values)
        getattr(ax, f"{which}axis").set_minor_locator(matplotlib.ticker.NullLocator())
    getattr(ax, f"set_{which}label")(key + (" (log scale)" if log else ""))
    return edges, log


def plot_heatmap(keys: list[str], rows: list[str], cols: list[str], table: dict[tuple[str, str], float | None],
                 metric: str, path: str | os.PathLike, failed: set[tuple[str, str]] | frozenset = frozenset()) -> Path:
    """Heatmap of ``metric`` over ``keys[0]`` (y: ``rows``) x ``keys[1]`` (x: ``cols``);
    ``table`` maps ``(row, col)`` to the value; cells without one stay blank, labelled
    "failed" when they are in ``failed`` (the configuration ran, no job of it completed),
    else "not run"."""
    grid = np.array([[table.get((r, c)) if table.get((r, c)) is not None else np.nan for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(1.4 * len(cols) + 3, 0.9 * len(rows) + 2), constrained_layout=True)
    x_edges, _ = _axis(ax, "x", keys[1], cols)
    y_edges, _ = _axis(ax, "y", keys[0], rows)
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(grid), cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label=metric)
    x_mid, y_mid = _centres(x_edges, ax.get_xscale()), _centres(y_edges, ax.get_yscale())
    finite = grid[np.isfinite(grid)]
    threshold = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i, y in enumerate(y_mid):
        for j, x in enumerate(x_mid):
            value = grid[i, j]
            if math.isnan(value):
                ran_and_failed = (rows[i], cols[j]) in failed
                label, color = ("failed", "#b00020") if ran_and_failed else ("not run", "#777777")
                if ran_and_failed:  # a pale red cell: this configuration ran and failed
                    ax.add_patch(matplotlib.patches.Rectangle(
                        (x_edges[j], y_edges[i]), x_edges[j + 1] - x_edges[j], y_edges[i + 1] - y_edges[i],
                        facecolor="#f8d7da", edgecolor="none", zorder=0.5))
            else:
                label, color = f"{value:.3g}", "white" if value < threshold else "black"
            ax.text(x, y, label, ha="center", va="center", fontsize=9, color=color,
                    fontweight="bold" if label == "failed" else "normal")
    ax.set_title(f"{metric} by {keys[0]} and {keys[1]}")
    return save_figure(fig, path)


def _centres(edges: np.ndarray, scale: str) -> np.ndarray:
    return np.sqrt(edges[1:] * edges[:-1]) if scale == "log" else (edges[1:] + edges[:-1]) / 2


def plot_line(key: str, order: list[str], points: dict[str, tuple[float, float | None]], metric: str,
              path: str | os.PathLike) -> Path:
    """``metric`` against one swept parameter; error bars (std over seeds) where given."""
    numbers = numeric(order)
    x = numbers if numbers is not None else np.arange(len(order))
    means = [points[v][0] for v in order]
    errors = [points[v][1] for v in order]
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    ax.errorbar(x, means, yerr=None if all(e is None for e in errors) else [e or 0.0 for e in errors],
                marker="o", capsize=4)
    if log_spaced(numbers):
        ax.set_xscale("log")
    ax.set_xticks(x, order)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_bars(labels: list[str], values: list[float], errors: list[float] | None, metric: str,
              path: str | os.PathLike) -> Path:
    """Horizontal bars of ``metric`` per configuration (error bars over seeds if given)."""
    height = 0.45 * len(labels) + 1.2
    fig, ax = plt.subplots(figsize=(10, height), constrained_layout=True)
    ax.barh(range(len(labels)), values, xerr=errors, capsize=3)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    return save_figure(fig, path)


def _optuna_storage(root: Path) -> tuple[str, str] | None:
    """``(storage URL, study name)`` of the Optuna study stored in the sweep folder
    ``root`` (``optuna.db``, as ``hparams_search=*_optuna`` keeps it), or ``None``."""
    database = root / "optuna.db"
    if not database.is_file():
        return None
    import optuna  # noqa: PLC0415

    storage = f"sqlite:///{database}"
    names = [summary.study_name for summary in optuna.get_all_study_summaries(storage)]
    return (storage, names[0]) if len(names) == 1 else None


def plot_optuna_study(root: str | os.PathLike, folder: str | os.PathLike) -> list[Path]:
    """Optuna's own matplotlib plots of the study stored in ``root`` into ``folder``:
    ``optuna_history.png`` (optimisation history), ``optuna_importances.png`` (parameter
    importances), ``optuna_slice.png`` and, for two or more parameters,
    ``optuna_points.png`` (the sampled points of the first two, coloured by objective, failed
    trials marked: what Optuna's contour plot scatters, without interpolating between the
    few points), each over the trials the study sampled. A plot the study
    cannot make yet (e.g. importances from one trial) is left out. ``[]`` without a study."""
    found = _optuna_storage(Path(root))
    if found is None:
        return []
    import warnings  # noqa: PLC0415

    import optuna  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415
    from optuna.visualization import matplotlib as optuna_plots  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=found[1], storage=found[0])
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    params = sorted({name for trial in complete for name in trial.params})
    plots = [("optuna_history.png", optuna_plots.plot_optimization_history, {}, 2),
             ("optuna_importances.png", plot_param_importances, {}, 2),
             ("optuna_slice.png", optuna_plots.plot_slice, {}, 1)]
    if len(params) >= 2:
        plots.append(("optuna_points.png", plot_sampled_points, {"params": params[:2]}, 1))
    written = []
    for name, plot, kwargs, needed in plots:
        if len(complete) < needed:
            continue
        try:
            # Optuna marks its matplotlib plots experimental and switches the style to ggplot
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore")
                axes = plot(study, **kwargs)
        except Exception:  # noqa: BLE001  (e.g. importances of parameters that never varied)
            plt.close("all")
            continue
        fig = np.ravel(axes)[0].figure
        fig.set_size_inches(max(6.5, 3.4 * len(np.ravel(axes))) if name == "optuna_slice.png" else 6.5, 4.2)
        written.append(save_figure(fig, Path(folder) / name))
    return written


def plot_param_importances(study) -> plt.Axes:
    """The parameters' importances for the study's objective, as Optuna's
    ``plot_param_importances`` draws them (horizontal bars), from Optuna's mean-decrease-in-
    impurity evaluator (the optuna<3 that hydra-optuna-sweeper needs has a fANOVA and a
    matplotlib plot that fail on today's numpy and matplotlib)."""
    import optuna  # noqa: PLC0415

    importances = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0))
    names, values = list(importances)[::-1], list(importances.values())[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(names) + 1.6), constrained_layout=True)
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, max(values) * 1.2 if values and max(values) > 0 else 1)
    ax.set(title="Hyperparameter importances", xlabel="importance (mean decrease in impurity)")
    return ax


def plot_sampled_points(study, params: list[str]) -> plt.Axes:
    """The configurations the study sampled over ``params`` (two), coloured by the
    objective; failed trials as red crosses. Log axes where the values are log-spaced."""
    from optuna.trial import TrialState  # noqa: PLC0415

    trials = [t for t in study.get_trials(deepcopy=False) if all(p in t.params for p in params)]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    xy = np.array([[float(t.params[p]) for p in params] for t in done])
    points = ax.scatter(xy[:, 0], xy[:, 1], c=[t.value for t in done], cmap="viridis", s=60, edgecolors="black")
    fig.colorbar(points, ax=ax, label="objective")
    best = study.best_trial
    ax.scatter([best.params[params[0]]], [best.params[params[1]]], s=220, facecolors="none", edgecolors="tab:red",
               linewidths=2, label=f"best: trial {best.number} ({best.value:.3g})")
    if failed:
        bad = np.array([[float(t.params[p]) for p in params] for t in failed])
        ax.scatter(bad[:, 0], bad[:, 1], marker="x", color="tab:red", s=60, label=f"failed ({len(failed)})")
    everything = np.array([[float(t.params[p]) for p in params] for t in trials])
    for which, column in (("x", 0), ("y", 1)):
        values = np.unique(everything[:, column])
        axis = getattr(ax, f"{which}axis")
        if log_spaced(values):
            getattr(ax, f"set_{which}scale")("log")
            axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            axis.set_minor_locator(matplotlib.ticker.NullLocator())
        if len(values) <= 6 and np.all(values == np.round(values)):  # a few choices, e.g. units: those
            getattr(ax, f"set_{which}ticks")(values, [f"{v:g}" for v in values])
            axis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set(xlabel=params[0], ylabel=params[1], title=f"{len(done)} sampled configurations ({len(trials)} trials)")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return ax
