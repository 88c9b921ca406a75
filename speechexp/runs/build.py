"""Building a run's parts from its config, with one-sentence errors: the dataset folder,
the datamodule, the task (model, loss, optimizer), loggers, callbacks and the trainer; and a
checkpoint's task, with its data (:func:`trained_task`) or from the config alone
(:func:`task_without_data`, what inference and the fine-tuning pre-flight use)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from speechexp.errors import SpeechexpError
from speechexp.runs.callbacks import DestroyProcessGroupAtExit

# Lightning 2.6 trips a torch 2.13 deprecation on every fit/test; it says nothing about the run
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def instantiate_checked(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that surfaces user errors as :class:`SpeechexpError`."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, SpeechexpError):
            raise cause from None
        first_line = str(exc).strip().splitlines()[0]
        raise SpeechexpError(f"{first_line} {cause!r}; check that config node's keys and values.") from None


def build_preparer(dataset_cfg: DictConfig) -> Any:
    """The dataset's preparer, its list and dict fields as plain Python data (``_convert_``),
    so that its fingerprint (the folder name) hashes data, not OmegaConf containers; also
    for configs saved with older checkpoints."""
    return instantiate_checked(dataset_cfg.preparer, _convert_="all")


def prepare_dataset(dataset_cfg: DictConfig, data_dir: str) -> Path:
    """Prepare (or reuse) the dataset folder for ``dataset_cfg``; return its path."""
    return build_preparer(dataset_cfg).prepare(data_dir)


def instantiate_each(group_cfg: DictConfig | None) -> list:
    """Instantiate every node with a ``_target_`` under a dict-shaped group (loggers, callbacks)."""
    if not group_cfg:
        return []
    return [instantiate_checked(node) for node in group_cfg.values() if node and "_target_" in node]


def build_trainer(trainer_cfg: DictConfig, loggers: list | bool, callbacks: list, **overrides: Any) -> pl.Trainer:
    """The trainer of ``trainer_cfg`` (``overrides`` win), with the callbacks every trainer
    needs besides the configured ones (:class:`DestroyProcessGroupAtExit`)."""
    return instantiate_checked(trainer_cfg, logger=loggers or False,
                               callbacks=[*callbacks, DestroyProcessGroupAtExit()], **overrides)


def stage_metrics(trainer: pl.Trainer, stages: tuple[str, ...]) -> dict[str, float]:
    """Epoch-level metrics named ``stage/name`` (per-batch ``*_batch`` keys excluded)."""
    metrics = {}
    for key, value in trainer.callback_metrics.items():
        stage = key.split("/", 1)[0]
        if stage in stages and not key.endswith("_batch"):
            metrics[key] = float(value)
    return metrics


def resolved_container(cfg: DictConfig) -> dict:
    """The config as plain data with interpolations resolved (to store with weights)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False, enum_to_str=True)


def hydra_choice(group: str) -> str | None:
    """The option the running Hydra app chose for ``group`` (``None`` outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415

    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def build_task(run_cfg: DictConfig, datamodule: pl.LightningDataModule, **overrides: Any) -> pl.LightningModule:
    """Instantiate the task's LightningModule with its model, loss and optimizer; the task
    saves ``run_cfg`` (resolved, as plain data) with its weights.

    What the model and task need from the data (feature size, vocabulary, label names)
    comes from the datamodule's optional ``model_kwargs()`` and ``task_kwargs()``.
    """
    model_kwargs = getattr(datamodule, "model_kwargs", dict)()
    task_kwargs = getattr(datamodule, "task_kwargs", dict)()
    # plain containers: an OmegaConf ListConfig (e.g. Adam's betas) would otherwise end up in
    # the optimizer's state, and torch 2.4's weights_only loader refuses such checkpoints
    model = instantiate_checked(run_cfg.model, _convert_="all", **model_kwargs)
    loss = instantiate_checked(run_cfg.loss, _convert_="all")
    optimizer = instantiate_checked(run_cfg.optimizer, _convert_="all")
    scheduler = instantiate_checked(run_cfg.scheduler, _convert_="all") if run_cfg.get("scheduler") else None
    decoder = overrides.pop("decoder", None) or run_cfg.get("decoder")
    if decoder is not None:  # asr_emotion's CTC decoder (conf/decoder); refused for other tasks
        from speechexp.config.compatibility import check_decoder  # noqa: PLC0415

        name = decoder if isinstance(decoder, str) else hydra_choice("decoder") or "..."
        check_decoder(run_cfg.task.module.get("_target_"), name, run_cfg.task.get("name", "?"))
        overrides["decoder"] = decoder
    # not recursive: the saved run config is data (its `_target_`s are not to be built), kept plain
    return instantiate_checked(run_cfg.task.module, _recursive_=False, _convert_="all", model=model, loss=loss,
                               optimizer=optimizer, scheduler=scheduler, run_config=resolved_container(run_cfg),
                               **task_kwargs, **overrides)


def trained_task(ckpt_path: str, data_dir: str, task: str = "asr_emotion") -> tuple[pl.LightningModule,
                                                                                     pl.LightningDataModule, Path]:
    """A checkpoint's task with its weights (in eval mode), the datamodule of the data it
    trained on (prepared or reused in ``data_dir``, set up) and that data's folder: where the
    scripts that study a checkpoint start. One sentence for a checkpoint of another task."""
    from speechexp.runs.checkpoints import CONFIG_KEY, load_checkpoint, load_weights  # noqa: PLC0415

    checkpoint = load_checkpoint(ckpt_path)
    trained = (checkpoint[CONFIG_KEY].get("task") or {}).get("name")
    if trained != task:
        raise SpeechexpError(f"Checkpoint {ckpt_path} was trained for task={trained}, but this reads task={task} "
                             "checkpoints; pass one of those.")
    cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    dataset_dir = prepare_dataset(cfg.dataset, data_dir)
    datamodule = instantiate_checked(cfg.dataset.datamodule, dataset_dir=str(dataset_dir))
    datamodule.setup()
    module = build_task(cfg, datamodule, export_dir=None)
    load_weights(module, checkpoint, ckpt_path)
    return module.eval(), datamodule, dataset_dir


class _DataSpec:
    """What :func:`build_task` asks a datamodule for, read from a run config instead of data."""

    def __init__(self, kwargs_for_model: dict, kwargs_for_task: dict) -> None:
        self._model, self._task = kwargs_for_model, kwargs_for_task

    def model_kwargs(self) -> dict:
        return dict(self._model)

    def task_kwargs(self) -> dict:
        return dict(self._task)


def emotion_names(checkpoint: dict, path: str | Path) -> list[str]:
    """The checkpoint's emotion labels in training order."""
    from speechexp.tasks.asr_emotion import EMOTION_NAMES_KEY  # noqa: PLC0415

    names = checkpoint.get(EMOTION_NAMES_KEY) or checkpoint["speechexp_config"]["dataset"]["datamodule"].get("emotions")
    if not names:
        raise SpeechexpError(f"Checkpoint {path} names no emotion labels (its dataset.datamodule.emotions is null); "
                             "retrain with the emotions listed, or with this version of speechexp.")
    return [str(n) for n in names]


def check_emotions_fit(checkpoint: dict, config: dict, path: str | Path) -> None:
    """Refuse a run from an asr_emotion checkpoint whose ``dataset.datamodule.emotions`` lists
    another number of emotions than the checkpoint's emotion head was trained on (before any data
    is read; a list left null is the data's, judged once it is read)."""
    listed = ((config.get("dataset") or {}).get("datamodule") or {}).get("emotions")
    if not listed:
        return
    trained = emotion_names(checkpoint, path)
    if len(listed) != len(trained):
        raise SpeechexpError(f"Checkpoint {path} was trained on {len(trained)} emotions ({', '.join(trained)}), "
                             f"but this run's dataset.datamodule.emotions lists {len(listed)} "
                             f"({', '.join(map(str, listed))}); continue with its emotions "
                             f"(dataset.datamodule.emotions=[{','.join(trained)}]), or train without ckpt_path.")


def task_without_data(config: dict, checkpoint: dict, ckpt_path: str | Path, **overrides: Any) -> Any | None:
    """The task of the run ``config`` (a checkpoint's own, or a run's that will start from
    ``checkpoint``), built without its dataset folder: what a datamodule would give the model
    (``n_mels``, vocabulary, pitch, phonemes) is read from ``config``, the emotion labels from
    ``checkpoint``. Its weights are fresh; ``overrides`` go to :func:`build_task`. ``None``
    for a task other than separation and asr_emotion: its data sizes are unknown here.
    """
    from hydra.utils import get_class  # noqa: PLC0415

    from speechexp.tasks.asr_emotion import AsrEmotionTask  # noqa: PLC0415
    from speechexp.tasks.separation import SeparationTask  # noqa: PLC0415

    target = str(((config.get("task") or {}).get("module") or {}).get("_target_", ""))
    try:
        task_class = get_class(target)
    except Exception:  # noqa: BLE001 - an unknown or unimportable class: None below
        task_class = None
    if task_class is not None and issubclass(task_class, SeparationTask):
        spec = _DataSpec({}, {})
    elif task_class is not None and issubclass(task_class, AsrEmotionTask):
        from speechexp.data.text import CharTokenizer  # noqa: PLC0415

        datamodule = config["dataset"]["datamodule"]
        tokenizer = CharTokenizer(vocabulary=datamodule.get("vocabulary"),
                                  umlauts=str(datamodule.get("umlauts", "transliterate")))
        names = emotion_names(checkpoint, ckpt_path)
        sizes = {"n_mels": int(datamodule.get("n_mels", 80)), "vocab_size": tokenizer.vocab_size,
                 "num_emotions": len(names), **({"pitch": True} if datamodule.get("pitch") else {})}
        if datamodule.get("phonemes"):
            from speechexp.data.phonemes import PhonemeTokenizer  # noqa: PLC0415

            sizes["phoneme_classes"] = PhonemeTokenizer().vocab_size
        spec = _DataSpec(sizes, {"tokenizer": tokenizer, "emotion_names": names})
    else:
        return None
    return build_task(OmegaConf.create(config), spec, export_dir=None, **overrides)
