"""Structured-config schemas derived from the classes the configs instantiate.

A schema is a dataclass with ``_target_`` plus one typed field per keyword parameter of
the target (dataclass fields, or ``__init__`` parameters with defaults), so a YAML file
that names it as a default rejects a misspelled key or a wrongly typed value at
composition. Deriving them keeps one source of truth: the signature.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import inspect
import types
import typing
from enum import Enum
from typing import Any, Dict, List, Optional, Union

from hydra.utils import get_object

PRIMITIVES = (int, float, bool, str)


def omegaconf_type(annotation: Any) -> Any:
    """The closest type OmegaConf can validate (``Any`` where it cannot)."""
    if annotation in PRIMITIVES or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        primitives = [a for a in present if a in PRIMITIVES]
        # a config holds primitives only: `float | Tensor` (torch.optim's lr) is a float there
        inner = omegaconf_type(present[0]) if len(present) == 1 else primitives[0] if len(primitives) == 1 else Any
        return Optional[inner] if inner is not Any and len(present) < len(args) else inner
    if origin in (list, tuple, collections.abc.Sequence):
        element = args[0] if args else Any
        return List[element if element in PRIMITIVES else Any]
    if origin in (dict, collections.abc.Mapping) and args and args[0] is str:
        value = omegaconf_type(args[1])
        return Dict[str, value if value in PRIMITIVES else Any]
    return Any


def _parameters(target: Any) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` of the target's keyword parameters with defaults."""
    if dataclasses.is_dataclass(target):
        hints = typing.get_type_hints(target)
        out = []
        for f in dataclasses.fields(target):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                out.append((f.name, hints.get(f.name, Any), f.default))
            elif f.default_factory is not dataclasses.MISSING:
                out.append((f.name, hints.get(f.name, Any), f.default_factory()))
        return out
    function = target.__init__ if inspect.isclass(target) else target
    hints = typing.get_type_hints(function)
    return [(p.name, hints.get(p.name, Any), p.default)
            for p in inspect.signature(target).parameters.values()
            if p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _field(default: Any) -> dataclasses.Field:
    if isinstance(default, tuple):
        default = list(default)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda value=default: copy.deepcopy(value))
    return dataclasses.field(default=default)


def schema_for(target_path: str, name: str | None = None, partial: bool = False) -> type:
    """A dataclass schema for ``_target_: target_path`` (named ``<Class>Config``); with
    ``partial``, also ``_partial_: true`` (a constructor completed later, e.g. an optimizer)."""
    target = get_object(target_path)
    fields = [("_target_", str, dataclasses.field(default=target_path))]
    if partial:
        fields.append(("_partial_", bool, dataclasses.field(default=True)))
    for param, annotation, default in _parameters(target):
        fields.append((param, omegaconf_type(annotation), _field(default)))
    return dataclasses.make_dataclass(name or f"{target.__name__}Config", fields)


def dataset_schema(name: str, preparer_path: str, datamodule_path: str) -> type:
    """Schema of a dataset config: ``name``, ``preparer`` and ``datamodule`` nodes, plus
    ``root`` (the corpus folder) when the preparer reads one."""
    preparer, datamodule = schema_for(preparer_path), schema_for(datamodule_path)
    fields = [
        ("name", str, dataclasses.field(default=name)),
        ("preparer", preparer, dataclasses.field(default_factory=preparer)),
        ("datamodule", datamodule, dataclasses.field(default_factory=datamodule)),
    ]
    if "root" in {f.name for f in dataclasses.fields(preparer)}:
        fields.insert(1, ("root", Optional[str], dataclasses.field(default=None)))
    class_name = "".join(part.capitalize() for part in name.split("_")) + "DatasetConfig"
    return dataclasses.make_dataclass(class_name, fields)
