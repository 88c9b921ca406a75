"""Resolvers the YAML configs call (``${wandb_offline:}``, ``${sweep_job_dir:}``, ...)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def wandb_offline() -> bool:
    """wandb runs offline unless a key is set or ``WANDB_MODE=online`` asks otherwise."""
    if os.environ.get("WANDB_MODE", "").lower() == "online":
        return False
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "dryrun", "disabled"}:
        return True
    return not os.environ.get("WANDB_API_KEY")


def sweep_job_dir(*, _root_: DictConfig) -> str:
    """A multirun job's folder named after its swept parameters (``hydra.sweeper.params``),
    e.g. ``model.units=32,optimizer.lr=0.0012``: a re-run of a search that samples the same
    configuration finds its folder again (``hydra.sweep.subdir: ${sweep_job_dir:}``)."""
    params = set((_root_.hydra.sweeper.get("params") or {}).keys())
    chosen = [str(o) for o in _root_.hydra.overrides.task if str(o).split("=", 1)[0] in params]
    name = ",".join(chosen).replace(os.sep, "_") or str(_root_.hydra.job.num)
    return name if len(name) <= 120 else f"{name[:100]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"


def optuna_direction(mode: str) -> str:
    """The task's ``mode`` (max/min) as Optuna's direction (maximize/minimize)."""
    return {"max": "maximize", "min": "minimize"}[str(getattr(mode, "value", mode))]


def option_groups() -> str:
    """``group: option, option`` lines for the groups users pick (``--help``): every folder of
    the shipped configs with YAML files, plus Hydra's launchers; not the internal ``schema/``."""
    from speechexp.config import CONF_DIR  # noqa: PLC0415  (the package imports this module)

    conf = Path(CONF_DIR)
    groups = sorted(p.parent for p in conf.glob("*/*.yaml") if p.parent.name not in ("hydra",))
    groups += [conf / "hydra" / "launcher"]
    lines = []
    for group in dict.fromkeys(groups):
        options = sorted(p.stem for p in group.glob("*.yaml"))
        extra = ["basic", "joblib", "submitit_local"] if group.name == "launcher" else []
        lines.append(f"{group.relative_to(conf).as_posix()}: {', '.join(options + extra)}")
    return "\n".join(lines)


RESOLVERS = {"wandb_offline": wandb_offline, "sweep_job_dir": sweep_job_dir, "optuna_direction": optuna_direction,
             "speechexp_option_groups": option_groups}


def register_resolvers() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
