"""Structured-config schemas (dataclasses in Hydra's ConfigStore) and config resolvers.

The YAML files under ``conf/`` name these schemas in their defaults lists, so a
misspelled key or a value of the wrong type fails at composition with Hydra's message.
Importing this module registers everything; the entry points do so before composing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

# conf/ sits beside the package (the project is installed in editable mode).
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


class Mode(str, Enum):
    """Direction in which a monitored metric improves."""

    max = "max"
    min = "min"


class FrontEnd(str, Enum):
    """Input representation of the LSTM separator."""

    stft = "stft"
    time = "time"


@dataclass
class PathsConfig:
    data_dir: str = "data"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class TaskConfig:
    """A task declares its LightningModule, its metric and the config choices it accepts."""

    name: str = MISSING
    monitor: str = MISSING
    mode: Mode = Mode.max
    accepts: dict[str, list[str]] = field(default_factory=dict)
    module: Any = MISSING


@dataclass
class TrainConfig:
    task: TaskConfig = MISSING
    dataset: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = None
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    name: str = "speechexp"
    seed: int = 0
    train: bool = True
    test: bool = True
    ckpt_path: Optional[str] = None


@dataclass
class EvalConfig:
    ckpt_path: str = MISSING
    trainer: Any = MISSING
    logger: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0


@dataclass
class PrepareConfig:
    dataset: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class AdamWConfig:
    _target_: str = "torch.optim.AdamW"
    _partial_: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.01


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 1e-2
    momentum: float = 0.9


@dataclass
class LSTMSeparatorConfig:
    _target_: str = "speechexp.models.lstm_separator.LSTMSeparator"
    units: int = 128
    layers: int = 2
    bidirectional: bool = True
    front_end: FrontEnd = FrontEnd.stft
    n_fft: int = 256
    hop_length: int = 64
    frame_size: int = 80
    n_src: int = 2
    dropout: float = 0.0


@dataclass
class MultitaskModelConfig:
    _target_: str = "speechexp.models.multitask.MultitaskSpeechModel"
    conv_channels: int = 128
    stride: int = 2
    units: int = 128
    layers: int = 2
    dropout: float = 0.1


@dataclass
class SinusoidPreparerConfig:
    _target_: str = "speechexp.data.sinusoids.SinusoidPreparer"
    n_examples: int = 100
    fs: int = 8000
    duration: float = 1.0
    f1_range: list[float] = field(default_factory=lambda: [100.0, 900.0])
    f2_range: list[float] = field(default_factory=lambda: [1100.0, 3500.0])
    amplitude_range: list[float] = field(default_factory=lambda: [0.2, 0.5])
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    seed: int = 0
    name: str = "sinusoids"


@dataclass
class SeparationDataModuleConfig:
    _target_: str = "speechexp.data.separation_datamodule.SeparationDataModule"
    sample_rate: int = 8000
    n_src: int = 2
    batch_size: int = 16
    num_workers: int = 0


@dataclass
class SinusoidsDatasetConfig:
    name: str = "sinusoids"
    preparer: SinusoidPreparerConfig = field(default_factory=SinusoidPreparerConfig)
    datamodule: SeparationDataModuleConfig = field(default_factory=SeparationDataModuleConfig)


def wandb_offline() -> bool:
    """wandb runs offline unless a key is set or ``WANDB_MODE=online`` asks otherwise."""
    if os.environ.get("WANDB_MODE", "").lower() == "online":
        return False
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "dryrun", "disabled"}:
        return True
    return not os.environ.get("WANDB_API_KEY")


def register_configs() -> None:
    """Register schemas and resolvers (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(name="prepare_schema", node=PrepareConfig)
    # group schemas live under schema/<group>/ so they stay out of the options users see;
    # a YAML file pulls its schema in with `- /schema/<group>/<name>@_here_`
    for group, name, node in (
        ("task", "task", TaskConfig),
        ("model", "lstm_separator", LSTMSeparatorConfig),
        ("model", "multitask", MultitaskModelConfig),
        ("dataset", "sinusoids", SinusoidsDatasetConfig),
        ("optimizer", "adam", AdamConfig),
        ("optimizer", "adamw", AdamWConfig),
        ("optimizer", "sgd", SGDConfig),
    ):
        store.store(group=f"schema/{group}", name=name, node=node)
    if not OmegaConf.has_resolver("wandb_offline"):
        OmegaConf.register_new_resolver("wandb_offline", wandb_offline)


register_configs()
