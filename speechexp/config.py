"""Structured-config schemas (dataclasses in Hydra's ConfigStore) and config resolvers.

The YAML files under ``conf/`` name these schemas in their defaults lists, so a
misspelled key or a value of the wrong type fails at composition with Hydra's message.
Importing this module registers everything; the entry points do so before composing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from speechexp.schema import dataset_schema, schema_for

def _conf_dir() -> Path:
    """The configs: inside the package when installed from a wheel, else ``conf/`` at the
    top of the source tree (a checkout or an editable install), the one place they are edited."""
    package = Path(__file__).resolve().parent
    return package / "conf" if (package / "conf" / "train.yaml").is_file() else package.parent / "conf"


CONF_DIR = str(_conf_dir())


class Mode(str, Enum):
    """Direction in which a monitored metric improves."""

    max = "max"
    min = "min"


# What each config option instantiates; schemas are derived from these signatures.
MODELS = {
    "lstm_separator": "speechexp.models.lstm_separator.LSTMSeparator",
    "multitask": "speechexp.models.multitask.MultitaskSpeechModel",
}
_EMOTION_DM = "speechexp.data.emotion_datamodule.EmotionSpeechDataModule"
DATASETS = {
    "sinusoids": ("speechexp.data.sinusoids.SinusoidPreparer",
                  "speechexp.data.separation_datamodule.SeparationDataModule"),
    "emotional_speech": ("speechexp.data.emotional_speech.EmotionalSpeechPreparer", _EMOTION_DM),
    "ravdess": ("speechexp.data.corpora.RavdessPreparer", _EMOTION_DM),
    "crema_d": ("speechexp.data.corpora.CremaDPreparer", _EMOTION_DM),
    "tess": ("speechexp.data.corpora.TessPreparer", _EMOTION_DM),
    "emodb": ("speechexp.data.corpora.EmoDBPreparer", _EMOTION_DM),
}


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
    resume: bool = True
    sweep_name: Optional[str] = None
    threads: Optional[int] = None


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


RESOLVERS = {"wandb_offline": wandb_offline, "sweep_job_dir": sweep_job_dir, "optuna_direction": optuna_direction}


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
        ("optimizer", "adam", AdamConfig),
        ("optimizer", "adamw", AdamWConfig),
        ("optimizer", "sgd", SGDConfig),
    ):
        store.store(group=f"schema/{group}", name=name, node=node)
    for name, target in MODELS.items():
        store.store(group="schema/model", name=name, node=schema_for(target))
    for name, (preparer, datamodule) in DATASETS.items():
        store.store(group="schema/dataset", name=name, node=dataset_schema(name, preparer, datamodule))
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register_configs()
