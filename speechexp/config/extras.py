"""Options that need an optional extra (``pip install 'speechexp[optuna]'``), checked before Hydra.

Without the extra, Hydra would fail deep in composition ("Could not find
'hydra/sweeper/optuna'") or Lightning at the first log call; this names the install instead.
Only :func:`importlib.util.find_spec` is used, so the check imports nothing heavy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from speechexp.errors import IncompatibleOptions

# (config group, option) -> (module the option imports, extra that installs it)
NEEDS: dict[tuple[str, str], tuple[str, str]] = {
    ("hydra/sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    ("hydra/launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher", "joblib"),
    ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("logger", "tensorboard"): ("tensorboard", "tensorboard"),
    ("logger", "many"): ("tensorboard", "tensorboard"),
    ("decoder", "beam"): ("flashlight.lib.text", "lm"),
    ("decoder", "beam_lm"): ("flashlight.lib.text", "lm"),
    ("decoder", "beam_english"): ("flashlight.lib.text", "lm"),  # and wordfreq (voices), named when it decodes
    ("decoder", "beam_phonemes"): ("flashlight.lib.text", "lm"),  # and wordfreq (voices), named when it decodes
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def preset_choices(preset: Path) -> list[tuple[str, str]]:
    """``(group, option)`` pairs that a preset's defaults list overrides, e.g. a sweep preset's
    ``- override /hydra/sweeper: optuna``."""
    try:
        defaults = (yaml.safe_load(preset.read_text()) or {}).get("defaults") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    pairs = []
    for entry in defaults:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if isinstance(value, str):
                    pairs.append((key.removeprefix("override ").strip().lstrip("/"), value))
    return pairs


def missing_extra(choices: list[tuple[str, str]], conf_dirs: list[Path]) -> tuple[str, str] | None:
    """The first ``("group=option", extra)`` among ``choices`` whose extra is not installed.

    Presets (``hparams_search=...``, ``experiment=...``) are looked into for the options they
    pick; the option is then named as the user wrote it, with what it uses.
    """
    for group, option in choices:
        picked = [(group, option)]
        for conf_dir in conf_dirs:
            preset = conf_dir / group / f"{option}.yaml"
            if preset.is_file():
                picked += preset_choices(preset)
                break
        for inner_group, inner_option in picked:
            need = NEEDS.get((inner_group, inner_option))
            if need and not installed(need[0]):
                named = f"{group}={option}"
                if (inner_group, inner_option) != (group, option):
                    named += f" (it uses {inner_group}={inner_option})"
                return named, need[1]
    return None


def check_extras(choices: list[tuple[str, str]], conf_dirs: list[Path]) -> None:
    """Raise a one-sentence :class:`IncompatibleOptions` naming the install an option needs."""
    found = missing_extra(choices, conf_dirs)
    if found:
        option, extra = found
        raise IncompatibleOptions(
            f"{option} needs the optional '{extra}' dependencies, which are not installed; "
            f"run pip install 'speechexp[{extra}]' (or 'speechexp[all]')."
        )
