"""A run directory is a unit of work: re-running into it continues it instead of repeating it.

:func:`plan_run` looks at what a run dir already holds and decides:

- ``skip``: it completed with the same configuration (its ``results.json`` is kept);
- ``resume``: it was interrupted with the same configuration and holds a checkpoint
  (``checkpoints/last.ckpt``, or Lightning's SLURM ``hpc_ckpt_*.ckpt``), so training
  continues from the newest one;
- ``continue``: the same experiment with another training budget (:data:`BUDGET_KEYS`,
  e.g. ``trainer.max_epochs=20`` after 10): training goes on from its newest checkpoint
  (or from ``ckpt_path`` when that names one of the run's own checkpoints) in the same
  run dir, with the same logs and W&B run;
- ``start``: nothing usable is there (empty, or failed before its first checkpoint).

"The same configuration" compares the resolved config that the run saved
(``config.yaml``) with the new one, ignoring :data:`COSMETIC_KEYS`, which change how a
run reports, not what it computes. A run dir holding another experiment, or any run
with ``resume=false``, starts afresh after its earlier files are moved to
``.superseded/<time>/`` inside it: nothing is deleted, and a ``ckpt_path`` that pointed
into the run dir is read from where it was moved.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speechexp.errors import SpeechexpError

log = logging.getLogger("speechexp")

CONFIG_FILE, RESULTS_FILE, RUN_FILE = "config.yaml", "results.json", "run.json"
SUPERSEDED_DIR = ".superseded"
# what Hydra writes into the run dir before the run starts: never moved aside
HYDRA_FILES = (".hydra", "train.log", "evaluate.log")
# dotted config keys (and their children) that change how a run reports, not what it computes
COSMETIC_KEYS = ("logger", "resume", "sweep_name", "threads", "paths", "name", "report", "task.curves",
                 "task.module.n_media",
                 "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps")
# how long to train: changing only these continues a run instead of starting it afresh
BUDGET_KEYS = ("trainer.max_epochs", "trainer.max_steps")


def is_cosmetic(key: str) -> bool:
    """Whether the dotted config ``key`` (or an override's key) is in :data:`COSMETIC_KEYS`."""
    key = key.lstrip("+~")
    return key.startswith("hydra.") or any(key == c or key.startswith(c + ".") for c in COSMETIC_KEYS)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": value}`` (lists stay values)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def identity(run_config: dict) -> dict[str, Any]:
    """The flattened config without cosmetic keys and unset (``None``) values: what defines
    a run's results. A key a newer version adds as ``null`` (e.g. ``decoder``) leaves the
    runs it did not know the same experiment."""
    return {k: v for k, v in flatten(run_config).items() if not is_cosmetic(k) and v is not None}


def differences(old: dict, new: dict, limit: int = 3) -> str:
    """``"a: 1 -> 2, b: x -> y"`` for the first ``limit`` keys whose values differ."""
    old_id, new_id = identity(old), identity(new)
    keys = sorted(k for k in old_id.keys() | new_id.keys() if old_id.get(k) != new_id.get(k))
    shown = [f"{k}: {old_id.get(k, '(unset)')} -> {new_id.get(k, '(unset)')}" for k in keys[:limit]]
    return ", ".join(shown) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The newest resumable checkpoint: ``checkpoints/last.ckpt`` or an ``hpc_ckpt_*.ckpt``."""
    found = [p for p in [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@dataclass
class RunPlan:
    """What to do in a run dir; ``run_id`` names this unit of work (e.g. its W&B run id)."""

    action: str  # "start" | "resume" | "continue" | "skip"
    run_id: str
    checkpoint: Path | None = None  # the run's own checkpoint that training resumes from
    previous_results: dict = field(default_factory=dict)
    moved_ckpt_path: Path | None = None  # where a ckpt_path into the run dir went when superseded


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def read_results(path: Path) -> dict:
    """A job's ``results.json`` for a report or a comparison, which must not pass over a
    damaged one as a run without results.

    Raises:
        SpeechexpError: the file cannot be read or is not a JSON object.
    """
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SpeechexpError(f"{path} is unreadable ({exc}); delete it or rerun that job.") from None
    if not isinstance(results, dict):
        raise SpeechexpError(f"{path} holds no results object; delete it or rerun that job.")
    return results


def run_overrides(run_dir: Path) -> list[str]:
    """The overrides of the command that wrote the run's files: ``run.json``'s record, else
    (runs written before it kept one) Hydra's ``.hydra/overrides.yaml``."""
    recorded = read_json(run_dir / RUN_FILE).get("overrides")
    if isinstance(recorded, list):
        return [str(o) for o in recorded]
    try:
        listed = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in listed] if isinstance(listed, list) else []


def read_saved_config(run_dir: Path) -> dict | None:
    try:
        saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return saved if isinstance(saved, dict) else None


def supersede(run_dir: Path) -> Path | None:
    """Move what an earlier run left in ``run_dir`` to ``.superseded/<time>/``; return that folder."""
    earlier = [p for p in run_dir.iterdir() if p.name not in (*HYDRA_FILES, SUPERSEDED_DIR)] if run_dir.is_dir() else []
    if not earlier:
        return None
    target = run_dir / SUPERSEDED_DIR / time.strftime("%Y-%m-%d_%H-%M-%S")
    while target.exists():
        target = target.with_name(target.name + "_")
    target.mkdir(parents=True)
    for path in earlier:
        shutil.move(str(path), str(target / path.name))
    return target


def inside(run_dir: Path, path: str | None) -> bool:
    """Whether ``path`` names a file inside ``run_dir``."""
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(run_dir.resolve())
    except ValueError:
        return False
    return True


def experiment_identity(run_config: dict) -> dict[str, Any]:
    """:func:`identity` without the training budget and ``ckpt_path``: what stays the same
    when a run is continued."""
    return {k: v for k, v in identity(run_config).items() if k not in (*BUDGET_KEYS, "ckpt_path")}


def budget(run_config: dict) -> dict[str, Any]:
    flat = flatten(run_config)
    return {k: flat.get(k) for k in BUDGET_KEYS}


def plan_run(run_dir: Path, run_config: dict, resume: bool = True) -> RunPlan:
    """Decide whether the run in ``run_dir`` starts, resumes, continues or is already complete.

    Moves earlier files aside (see :func:`supersede`) when the run starts afresh over
    them. ``run_config`` is the resolved config as plain data.
    """
    saved = read_saved_config(run_dir)
    previous = read_json(run_dir / RESULTS_FILE)
    run_id = read_json(run_dir / RUN_FILE).get("run_id")
    ckpt_path = run_config.get("ckpt_path")
    own_ckpt = inside(run_dir, ckpt_path) and Path(ckpt_path).is_file()
    # ckpt_path of the run's own checkpoint, or the one it was started from, asks for the same run
    same_start = saved is not None and (not ckpt_path or own_ckpt or ckpt_path == saved.get("ckpt_path"))
    same_experiment = same_start and experiment_identity(saved) == experiment_identity(run_config)
    same_budget = saved is not None and budget(saved) == budget(run_config)
    checkpoint = Path(ckpt_path) if own_ckpt else newest_checkpoint(run_dir)
    if resume and same_experiment and same_budget and previous.get("status") == "completed":
        log.info("Run dir %s already completed this configuration: skipping it (resume=false retrains).", run_dir)
        return RunPlan("skip", run_id or new_run_id(), previous_results=previous)
    if resume and same_experiment and checkpoint is not None:
        if same_budget:
            log.info("Resuming from %s (resume=false starts afresh).", checkpoint)
            return RunPlan("resume", run_id or new_run_id(), checkpoint=checkpoint)
        log.info("Continuing %s with a new training budget (%s) from %s (resume=false starts afresh).",
                 run_dir, differences(saved, run_config), checkpoint)
        return RunPlan("continue", run_id or new_run_id(), checkpoint=checkpoint)
    moved = supersede(run_dir)
    plan = RunPlan("start", new_run_id())
    if moved is not None:
        reason = ("resume=false" if not resume else
                  f"it held another configuration: {differences(saved, run_config)}" if saved is not None
                  and not same_experiment else "no checkpoint to resume from")
        log.info("Starting afresh in %s (%s); the earlier run's files are in %s.", run_dir, reason, moved)
        if inside(run_dir, ckpt_path):  # the checkpoint asked for went with them: read it there
            plan.moved_ckpt_path = moved / Path(ckpt_path).resolve().relative_to(run_dir.resolve())
            log.info("ckpt_path %s is read from %s.", ckpt_path, plan.moved_ckpt_path)
    return plan


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
