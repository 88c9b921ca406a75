"""The entry points' own config schemas (``train_schema``, ``eval_schema``,
``infer_schema``, ``export_schema``, ``prepare_schema``) and the task schema. Options' schemas are derived from their
targets instead (:mod:`speechexp.config.registry`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING


class Mode(str, Enum):
    """Direction in which a monitored metric improves."""

    max = "max"
    min = "min"


@dataclass
class PathsConfig:
    data_dir: str = "data"
    # Optional: `--cfg job --resolve` resolves it before Hydra has a run dir (None)
    output_dir: Optional[str] = "${hydra:runtime.output_dir}"


@dataclass
class TaskConfig:
    """A task declares its LightningModule, its metric and the config choices it accepts."""

    name: str = MISSING
    monitor: str = MISSING
    mode: Mode = Mode.max
    accepts: dict[str, list[str]] = field(default_factory=dict)
    curves: list[str] = field(default_factory=list)  # per-epoch metrics figures/curves.png draws
    module: Any = MISSING


@dataclass
class TrainConfig:
    task: TaskConfig = MISSING
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    decoder: Any = None
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    name: str = "speechexp"
    seed: int = 0
    train: bool = True
    test: bool = True
    ckpt_path: Optional[str] = None
    resume: bool = True
    sweep_name: Optional[str] = None
    threads: Optional[int] = None
    report: bool = True


@dataclass
class EvalConfig:
    ckpt_path: str = MISSING
    trainer: Any = MISSING
    logger: Any = None
    decoder: Any = None
    dataset: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    report: bool = True


@dataclass
class InferConfig:
    ckpt_path: str = MISSING
    input: str = MISSING
    speakers: Optional[str] = "none"
    batch_size: int = 16
    num_workers: int = 0
    chunk_seconds: float = 4.0
    overlap_seconds: float = 0.5
    words: bool = True
    figures: bool = False
    trainer: Any = MISSING
    decoder: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    threads: Optional[int] = None


@dataclass
class ExportConfig:
    ckpt_path: str = MISSING
    format: str = "onnx"
    output: Optional[str] = None
    verify: bool = True
    tolerance: float = 1e-4
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    threads: Optional[int] = None


@dataclass
class PrepareConfig:
    dataset: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    # composed only so that ``experiment=NAME`` applies as in training; never built
    task: Any = None
    model: Any = None
    loss: Any = None
    optimizer: Any = None
    scheduler: Any = None
    decoder: Any = None
    trainer: Any = None
