"""Entry points' error handling: a user's mistake is one line, a failed sweep job a record.

Imports nothing heavy, so an entry point's ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
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
    """Wrap a Hydra task function (or a command's or a script's ``main``) so that user errors
    are one line without a traceback.

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


def positive(text: str) -> int:
    """An argparse type: a whole number above 0 (a window, a hop, a count or a size of none means nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return value


HYDRA_SAVED_CONFIGS = {"config.yaml", "hydra.yaml", "overrides.yaml"}
_GIVEN_RUN_DIR: set[Path] = set()  # an explicit hydra.run.dir of this command, resolved
_FOLDERS_BEFORE: set[Path] = set()  # it and the folders above it that existed before the command


def remember_folders_before(argv: list[str]) -> None:
    """Note which folders of an explicit ``hydra.run.dir=PATH`` (the path and those above it)
    exist before Hydra makes it, so that a refusal removes only the folders this command made
    (a user's own empty folder stays). Called once per command, before Hydra starts."""
    _GIVEN_RUN_DIR.clear()
    _FOLDERS_BEFORE.clear()
    for arg in argv:
        if arg.startswith("hydra.run.dir=") and "${" not in arg:
            path = Path(arg.split("=", 1)[1]).expanduser().resolve()
            _GIVEN_RUN_DIR.add(path)
            _FOLDERS_BEFORE.update(folder for folder in (path, *path.parents) if folder.is_dir())


def made_by_this_command(folder: Path, run_dir: Path, cwd: Path) -> bool:
    """Whether ``folder`` (the run dir or one above it) is one this command made: below the
    first folder that existed before it for an explicit run dir, else inside the working
    directory (a default run dir is stamped with the time, so it is new)."""
    if run_dir in _GIVEN_RUN_DIR:
        return folder not in _FOLDERS_BEFORE
    return folder != cwd and folder.is_relative_to(cwd)


def discard_hydra_only_run_dir() -> None:
    """Remove the run dir Hydra made for a refused single run when all it holds is what
    Hydra wrote before the task began (its saved configs and the job's log), with the
    folders above it that are left empty (:func:`made_by_this_command`). A refusal then
    leaves nothing behind; a run dir holding anything else (an earlier run) is kept, and of
    a folder that existed before the command only what Hydra wrote into it is removed."""
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
    if not made_by_this_command(run_dir, run_dir, cwd):  # a user's own folder: only what Hydra wrote goes
        for entry in entries:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    while made_by_this_command(parent, run_dir, cwd) and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
