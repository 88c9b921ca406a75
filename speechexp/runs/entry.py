"""Entry points' error handling: a user's mistake is one line, a failed sweep job a record.

Imports nothing heavy, so an entry point's ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import logging
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from speechexp.errors import SpeechexpError

log = logging.getLogger("speechexp")


@dataclass
class JobFailure:
    """What a failed job of a multirun returns instead of raising, so the sweep goes on:
    sweepers that read a score (Optuna) record the trial as failed, and the multirun's
    report (:mod:`speechexp.sweeps.report`) lists the failure from the job's ``results.json``."""

    error: str

    def __float__(self) -> float:
        raise ValueError(self.error)

    def __str__(self) -> str:
        return f"no score, the job failed: {self.error}"


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_sigterm_stop(exc: BaseException) -> bool:
    """Whether ``exc`` is Lightning's stop after SIGTERM (looked up lazily: Lightning is heavy)."""
    exceptions = sys.modules.get("pytorch_lightning.utilities.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.SIGTERMException)


def entry_point(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task function so that user errors are one line without a traceback.

    A single run prints ``Error: <sentence>`` on stderr and exits 1 (2 for options that
    cannot run together, :class:`~speechexp.errors.IncompatibleOptions`; an interruption:
    ``Interrupted: ...`` and 128 + the signal). In a multirun a failing job, whatever the
    exception, prints its error and returns :class:`JobFailure`, and the sweep runs every
    other job.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SystemExit as exc:
            if not is_sigterm_stop(exc):
                raise
            print("Interrupted: training stopped and saved checkpoints/last.ckpt; run the same command "
                  "again to resume.", file=sys.stderr, flush=True)
            sys.exit(128 + signal.SIGTERM)
        except SpeechexpError as exc:
            print(f"Error: {exc}", file=sys.stderr, flush=True)
            if in_multirun():
                return JobFailure(str(exc))
            discard_hydra_only_run_dir()
            sys.exit(getattr(exc, "exit_code", 1))
        except Exception as exc:
            if not in_multirun():
                raise
            log.exception("Job failed")
            return JobFailure(f"{type(exc).__name__}: {exc}")

    return wrapper


HYDRA_SAVED_CONFIGS = {"config.yaml", "hydra.yaml", "overrides.yaml"}


def discard_hydra_only_run_dir() -> None:
    """Remove the run dir Hydra made for a refused single run when all it holds is what
    Hydra wrote before the task began (its saved configs and the job's log), with the
    folders above it that are left empty, inside the working directory. A refusal then
    leaves nothing behind; a run dir holding anything else (an earlier run) is kept."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if OmegaConf.is_missing(hydra_cfg.runtime, "output_dir"):  # left from a job run before in this process
        return
    run_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    cwd = Path.cwd().resolve()
    if run_dir == cwd or cwd.is_relative_to(run_dir) or not run_dir.is_dir():
        return
    logs = {Path(str(handler.filename)).name for handler in (hydra_cfg.job_logging or {}).get("handlers", {}).values()
            if handler.get("filename") and Path(str(handler.filename)).resolve().parent == run_dir}
    saved = {hydra_cfg.output_subdir} if hydra_cfg.output_subdir else set()
    entries = list(run_dir.iterdir())
    if any(e.name not in (logs if e.is_file() else saved) for e in entries):
        return
    if any(f.name not in HYDRA_SAVED_CONFIGS for d in entries if d.is_dir() for f in d.iterdir()):
        return
    for handler in logging.getLogger().handlers:  # the job's log file is open
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).resolve().parent == run_dir:
            handler.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    while parent != cwd and parent.is_relative_to(cwd) and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
