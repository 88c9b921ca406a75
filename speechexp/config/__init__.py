"""Composition: where the configs live, the schemas Hydra validates them with, the
resolvers they use, and which options fit which task (:mod:`.compatibility`).

Importing this package registers schemas and resolvers, so every entry point (and a
Hydra job process of a multirun) composes with them. A process that only asks Hydra for
help or shell completion gets untyped placeholder schemas instead, so ``--help`` does
not pay for importing torch and every model, preparer and datamodule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from speechexp.config.registry import register_configs
from speechexp.runs.entry import remember_folders_before


def _conf_dir() -> Path:
    """The configs: inside the package when installed from a wheel, else ``conf/`` at the
    top of the source tree (a checkout or an editable install), the one place they are edited."""
    package = Path(__file__).resolve().parent.parent
    return package / "conf" if (package / "conf" / "train.yaml").is_file() else package.parent / "conf"


CONF_DIR = str(_conf_dir())
# Hydra flags that compose nothing a run needs typed: help texts and shell completion
HELP_FLAGS = ("--help", "-h", "--hydra-help", "--shell-completion", "-sc")


def help_only(argv: list[str]) -> bool:
    """Whether this command line only asks Hydra for help or completion."""
    return any(arg in HELP_FLAGS or arg.startswith("--shell-completion") for arg in argv)


def register_command_line(argv: list[str]) -> None:
    """Also register the schemas of the options in a ``--config-dir`` on the command line,
    so a user's own dataset or model YAML can pull in ``/schema/<group>/<option>``."""
    from hydra._internal.utils import get_args_parser  # noqa: PLC0415  (Hydra's own CLI parser)

    try:
        config_dir = get_args_parser().parse_args(argv).config_dir
    except SystemExit:  # Hydra reports a malformed command line itself
        return
    if config_dir:
        register_configs([Path(config_dir), Path(CONF_DIR)], typed=not help_only(argv))



REQUIRED_GROUPS = ("task", "dataset", "model", "loss", "optimizer", "trainer", "paths", "experiment")


def null_groups_as_deletions(argv: list[str], conf_dirs: list[Path] | None = None) -> list[str]:
    """``argv`` with ``group=null`` (the README's "off", e.g. ``scheduler=null``) spelled as
    Hydra's ``~group``, for every optional config group; Hydra itself rejects a null group
    override. A group that is not in the run unless added (``+ablation=...``) has nothing to
    turn off: its ``null`` is dropped. A group every run needs is refused in one sentence."""
    from speechexp.errors import IncompatibleOptions  # noqa: PLC0415

    dirs = conf_dirs or [Path(CONF_DIR)]
    defaults = yaml.safe_load((Path(CONF_DIR) / "train.yaml").read_text()).get("defaults") or []
    in_defaults = {key for entry in defaults if isinstance(entry, dict) for key in entry}
    added = {a.partition("=")[0].lstrip("+") for a in argv if a.startswith("+")}
    rewritten = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and value.strip().lower() in ("null", "none") and key.isidentifier() \
                and any((d / key).is_dir() for d in dirs):
            if key in REQUIRED_GROUPS:
                options = sorted({p.stem for d in dirs for p in (d / key).glob("*.yaml")})
                raise IncompatibleOptions(f"{key}=null: every run needs a {key}; choose one of "
                                          f"{', '.join(f'{key}={o}' for o in options)}.")
            if key not in in_defaults and key not in added:
                continue
            arg = f"~{key}"
        rewritten.append(arg)
    return rewritten


def prepare_command_line() -> None:
    """What an entry point does with ``sys.argv`` before Hydra reads it: register a
    ``--config-dir``'s schemas, turn ``group=null`` into ``~group``, and let ``-m`` and
    ``--cfg`` go together (``--cfg`` shows the job config either way); note which folders of
    an explicit ``hydra.run.dir`` exist already, so a refusal keeps them."""
    register_command_line(sys.argv[1:])
    remember_folders_before(sys.argv[1:])
    argv = null_groups_as_deletions(sys.argv[1:])
    if any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in argv):  # printing a config: the mode
        argv = [a for a in argv if a not in ("-m", "--multirun")]  # does not matter (Hydra refuses both)
    sys.argv[1:] = argv


register_configs([Path(CONF_DIR)], typed=not help_only(sys.argv[1:]))
