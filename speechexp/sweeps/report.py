"""The multirun around the jobs (a Hydra callback, ``hydra.callbacks.sweep_report``).

At the start: an Optuna study stored in the sweep folder continues where it stopped (the
sweeper's ``n_trials`` counts the study's finished trials, trials left running by an
interrupted sweep are marked failed, and a seeded sampler is re-seeded past the trials
so far). At the end: the jobs are compared (:mod:`speechexp.sweeps.comparison`), one summary
line is printed, ``report.html``/``report.md`` are written (unless ``report=false``), and the
process exits non-zero if any job of this multirun failed.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from speechexp.sweeps.comparison import write_comparison
from speechexp.errors import SpeechexpError
from speechexp.runs.plan import RESULTS_FILE

log = logging.getLogger("speechexp.sweep")


def continue_optuna_study(config: DictConfig) -> None:
    """Make an Optuna sweep with stored ``storage`` run only the trials its study still lacks."""
    sweeper = config.hydra.sweeper
    if "optuna" not in str(sweeper.get("_target_", "")).lower() or not sweeper.get("storage"):
        return
    import optuna  # noqa: PLC0415  (only for Optuna sweeps)
    from optuna.trial import TrialState  # noqa: PLC0415

    try:
        study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
    except KeyError:  # a new study
        return
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)  # its sweep was interrupted
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    remaining = max(0, int(sweeper.n_trials) - finished)
    log.info("Optuna study %r has %d finished trial(s); running %d more of n_trials=%d.",
             sweeper.study_name, finished, remaining, sweeper.n_trials)
    with read_write(sweeper), open_dict(sweeper):
        sweeper.n_trials = remaining
        if sweeper.get("sampler") and sweeper.sampler.get("seed") is not None:
            # a sampler re-seeded alike would propose the study's first trials again
            sweeper.sampler.seed = int(sweeper.sampler.seed) + len(study.trials)


def summary_line(failed: list[tuple[str, str, str]], total: int) -> str:
    """``3 of 12 jobs failed: #1 model.units=-3: <error>; ...``"""
    listed = "; ".join(f"#{job} {overrides}: {error}" if job.isdigit() else f"{overrides or job}: {error}"
                       for job, overrides, error in failed)
    return f"{len(failed)} of {total} jobs failed: {listed}"


class SweepReport(Callback):
    """Compare a multirun's jobs when it ends; exit 1 with one summary line if any failed."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)  # where an Optuna study is stored
        continue_optuna_study(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        mine = [folder for folder in sweep_dir.glob("**/.hydra/overrides.yaml")
                if ".superseded" not in folder.parts and folder.stat().st_mtime >= self.started - 1]
        job_dirs = sorted((p.parent.parent for p in mine), key=lambda d: str(d))
        results, swept, comparison = {}, {}, None
        try:
            comparison = write_comparison([sweep_dir])
            results = {job.folder: job.results for job in comparison.jobs}
            swept = {job.folder: " ".join(f"{k}={v}" for k, v in job.swept.items()) for job in comparison.jobs}
            log.info("Comparison of %d job(s): %s", len(comparison.jobs), sweep_dir / "comparison.md")
            if comparison.best is not None:
                log.info("Best (%s %s): %s", comparison.metric, comparison.mode, sweep_dir / "best.yaml")
        except SpeechexpError as exc:  # e.g. no job wrote results
            log.warning("No comparison: %s", exc)
        if comparison is not None and config.get("report", True):
            try:
                from speechexp.reports.sweep_page import write_sweep_report  # noqa: PLC0415

                log.info("Report: %s", write_sweep_report(sweep_dir, comparison)[0])
            except Exception as exc:  # noqa: BLE001  (the jobs' results stand without a page)
                log.warning("No sweep report: %s: %s", type(exc).__name__, exc)
        failed, skipped = [], 0
        for job_dir in job_dirs:
            result = results.get(job_dir)
            if result is None:
                failed.append((job_dir.name, "", f"no {RESULTS_FILE} (the job died before writing it)"))
            elif result.get("status") != "completed":
                failed.append((job_dir.name, swept.get(job_dir, ""), str(result.get("error", result.get("status")))))
            elif (job_dir / RESULTS_FILE).stat().st_mtime < self.started:
                skipped += 1
        if failed:
            print(f"Error: {summary_line(failed, len(job_dirs))}", file=sys.stderr, flush=True)
            sys.exit(1)
        log.info("All %d job(s) completed (%d skipped: already complete).", len(job_dirs), skipped)
