"""Register the schemas Hydra validates configs with, derived from the YAMLs' own targets.

One convention maps config to code: every option's YAML names its ``_target_`` (a
dataset YAML names its ``preparer`` and ``datamodule`` targets), and its schema,
``schema/<group>/<option>``, is derived from that target's signature
(:mod:`speechexp.config.derive`). Adding a model, optimizer or dataset is one YAML (plus
its class); nothing here lists them. The schemas sit under ``schema/`` so they stay out
of the options users see; a YAML pulls its own in with ``- /schema/<group>/<option>@_here_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from hydra.core.config_store import ConfigStore

from speechexp.config.resolvers import register_resolvers
from speechexp.config.schemas import EvalConfig, ExportConfig, InferConfig, PrepareConfig, TaskConfig, TrainConfig

# groups whose options get a schema derived from their targets
DERIVED_GROUPS = ("model", "optimizer", "dataset")


def read_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping; ``{}`` when unreadable or not a mapping."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def option_targets(conf_dirs: Iterable[Path], group: str) -> dict[str, dict[str, Any]]:
    """``{option: yaml}`` for each option of ``group`` that names a target (first dir wins)."""
    found: dict[str, dict[str, Any]] = {}
    for conf_dir in conf_dirs:
        for path in sorted((Path(conf_dir) / group).glob("*.yaml")):
            node = read_yaml(path)
            if path.stem not in found and (node.get("_target_") or "preparer" in node):
                found[path.stem] = node
    return found


def derived_schema(group: str, option: str, node: dict, typed: bool) -> Any:
    """The schema for one option; ``{}`` (untyped) when ``typed`` is false."""
    if not typed:
        return {}
    from speechexp.config.derive import dataset_schema, schema_for  # noqa: PLC0415  (imports the targets)

    if group == "dataset":
        return dataset_schema(option, node["preparer"]["_target_"], node["datamodule"]["_target_"])
    return schema_for(node["_target_"], partial=bool(node.get("_partial_")))


def register_configs(conf_dirs: Iterable[Path], typed: bool = True) -> None:
    """Register the entry points' schemas, every option's derived schema and the resolvers.

    ``typed=False`` registers open placeholders (for help and completion, which compose
    but run nothing). Idempotent; a later call for a user's ``--config-dir`` adds its options.
    """
    conf_dirs = list(conf_dirs)
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(name="infer_schema", node=InferConfig)
    store.store(name="export_schema", node=ExportConfig)
    store.store(name="prepare_schema", node=PrepareConfig)
    store.store(group="schema/task", name="task", node=TaskConfig)
    for group in DERIVED_GROUPS:
        for option, node in option_targets(conf_dirs, group).items():
            store.store(group=f"schema/{group}", name=option, node=derived_schema(group, option, node, typed))
    register_resolvers()
