"""Which config choices fit which task, checked before anything runs.

A task config lists the options it accepts per group (``task.accepts``). The same rule
is checked twice: on the command line before Hydra composes anything
(:func:`check_command_line`; a model of another task would otherwise end in Hydra's
"Key ... not in ..." because the experiment preset sets keys the other model lacks), and
on the composed config (:func:`check_config`) for every way of choosing options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml

from speechexp.errors import SpeechexpError

CHECKED_GROUPS = ("dataset", "model", "loss")


def _read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _find(conf_dirs: Iterable[Path], group: str, option: str) -> Path | None:
    for conf_dir in conf_dirs:
        path = Path(conf_dir) / group / f"{option}.yaml"
        if path.is_file():
            return path
    return None


def _default_choice(config_file: Path | None, group: str, conf_dirs: Iterable[Path] = (),
                    _seen: frozenset = frozenset()) -> str | None:
    """The option a config file's defaults list picks for ``group`` (plain or ``override
    /group``), also through the configs it includes (``- /recipe/asr_emotion``, or a
    sibling such as ``- asr_emotion``); a later entry wins, as in Hydra."""
    if config_file is None or config_file in _seen:
        return None
    found = None
    for entry in _read_yaml(config_file).get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.replace("override ", "").strip().lstrip("/") == group and isinstance(value, str):
                    found = value
        elif isinstance(entry, str) and entry != "_self_":
            name = entry.strip()
            if name.startswith("/"):
                included = _find(conf_dirs, str(Path(name.lstrip("/")).parent), Path(name).name)
            else:
                included = config_file.parent / f"{name}.yaml"
            found = _default_choice(included if included and included.is_file() else None, group,
                                    conf_dirs, _seen | {config_file}) or found
    return found


def experiments_accepting(conf_dirs: list[Path], group: str, option: str) -> list[str]:
    """Experiments (``experiment/*.yaml``) whose task accepts ``group=option``; those that
    choose that option themselves come first (``dataset=ravdess``: asr_emotion_ravdess)."""
    chooses, accepts_it = [], []
    for conf_dir in conf_dirs:
        for path in sorted((Path(conf_dir) / "experiment").glob("*.yaml")):
            task = _default_choice(path, "task", conf_dirs)
            accepts = _read_yaml(_find(conf_dirs, "task", task) or Path()).get("accepts", {}) if task else {}
            if option in (accepts.get(group) or []) and path.stem not in chooses + accepts_it:
                own = _default_choice(path, group, conf_dirs) == option
                (chooses if own else accepts_it).append(path.stem)
    return chooses + accepts_it


def problem(group: str, chosen: str, task: str, allowed: list[str], experiment: str | None,
            conf_dirs: list[Path]) -> str:
    """One sentence: why ``group=chosen`` does not fit ``task`` and what to choose instead."""
    where = f"experiment={experiment} (task={task})" if experiment else f"task={task}"
    fixes = [f"experiment={e}" for e in experiments_accepting(conf_dirs, group, chosen)[:1]]
    options = ", ".join(f"{group}={a}" for a in allowed)
    advice = (f"use {fixes[0]}, or choose one of {options}" if fixes
              else f"choose one of {options}, or pick an experiment whose task fits {group}={chosen}")
    return f"{group}={chosen} cannot be used with {where}; {advice}."


def check_choices(task: str, accepts: dict, choices: dict, experiment: str | None, conf_dirs: list[Path]) -> None:
    """Raise :class:`SpeechexpError` for the first chosen option ``task`` does not accept."""
    for group, allowed in accepts.items():
        chosen = choices.get(group)
        if chosen is not None and chosen not in allowed:
            raise SpeechexpError(problem(group, chosen, task, list(allowed), experiment, conf_dirs))


def check_config(cfg, choices: dict, conf_dirs: list[Path]) -> None:
    """Check a composed config; ``choices`` are Hydra's runtime choices (group -> option)."""
    check_choices(choices.get("task") or cfg.task.name, cfg.task.accepts, choices, choices.get("experiment"), conf_dirs)


def check_command_line(argv: list[str], conf_dir: Path, config_name: str = "train") -> None:
    """Refuse ``group=option`` overrides that the chosen (or default) experiment's task does
    not accept, before Hydra composes; anything it cannot read is left to Hydra."""
    from hydra._internal.utils import get_args_parser  # noqa: PLC0415  (Hydra's own CLI parser)
    from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: PLC0415

    try:
        args = get_args_parser().parse_args(argv)
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (SystemExit, Exception):  # noqa: BLE001 - Hydra reports malformed command lines itself
        return
    conf_dirs = [Path(args.config_dir)] if args.config_dir else []
    conf_dirs.append(conf_dir)
    chosen = {o.key_or_group: o.value() for o in overrides if o.package is None and not o.is_sweep_override()
              and o.key_or_group in (*CHECKED_GROUPS, "task", "experiment") and isinstance(o.value(), str)}
    if not any(group in chosen for group in CHECKED_GROUPS):
        return
    experiment = chosen.get("experiment") or _default_choice(_find(conf_dirs, "", config_name), "experiment", conf_dirs)
    task = chosen.get("task") or _default_choice(_find(conf_dirs, "experiment", experiment or ""), "task", conf_dirs)
    task_file = _find(conf_dirs, "task", task) if task else None
    if task_file is None:
        return
    accepts = _read_yaml(task_file).get("accepts") or {}
    check_choices(task, accepts, {g: chosen.get(g) for g in CHECKED_GROUPS}, experiment, conf_dirs)
