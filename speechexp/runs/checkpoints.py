"""Checkpoints are data, not code: load them with ``weights_only=True`` and check they fit.

A speechexp checkpoint holds tensors and plain data only (the run config is stored as a
plain container, ``speechexp_config``), so nothing in it needs unpickling code. Anything
else is refused before it can run.
"""

from __future__ import annotations

import os
import pickle
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from speechexp.errors import SpeechexpError

CONFIG_KEY = "speechexp_config"


def plain_data(value: Any) -> Any:
    """``value`` with enums (e.g. a config's ``mode: max``, which a plateau scheduler keeps in
    its state) replaced by their values, through dicts, lists and tuples, so that the
    ``weights_only`` loader accepts every checkpoint speechexp writes."""
    if isinstance(value, Enum):
        return plain_data(value.value)
    if isinstance(value, dict):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_data(item) for item in value)
    return value


def load_checkpoint(path: str | Path) -> dict:
    """Load ``path`` as tensors and plain data only.

    Raises:
        SpeechexpError: the file is missing, unreadable, holds objects whose unpickling
            could run code, or was not written by speechexp-train.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise SpeechexpError(f"A checkpoint path is a string or a path, not {path!r}; pass the .ckpt file written by "
                             "speechexp-train (e.g. <run dir>/checkpoints/last.ckpt).")
    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob("**/*.ckpt"))
        example = next((c for c in inside if c.name == "last.ckpt"), inside[0] if inside else None)
        raise SpeechexpError(f"Checkpoint {path} is a folder; pass ckpt_path=PATH to a .ckpt file "
                             + (f"in it (e.g. {example})." if example else
                                "written by speechexp-train (e.g. <run dir>/checkpoints/last.ckpt)."))
    if not path.is_file():
        raise SpeechexpError(f"Checkpoint {path} does not exist; pass ckpt_path=PATH to a .ckpt file "
                             "written by speechexp-train (e.g. <run dir>/checkpoints/last.ckpt).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # the weights-only unpickler names a GLOBAL it will not import (code that would run);
        # any other complaint is about bytes that are no pickle at all
        blocked = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if not blocked:
            raise SpeechexpError(f"Checkpoint {path} is corrupt or not a PyTorch checkpoint (it does not unpickle); "
                                 "pass another ckpt_path.") from None
        raise SpeechexpError(f"Checkpoint {path} holds objects other than tensors and plain data ({blocked[0]}), "
                             "so loading it could run code; refused: use a checkpoint written by "
                             "speechexp-train.") from None
    except (EOFError, KeyError):  # an empty file; bytes the old pickle format misreads (a text file)
        raise SpeechexpError(f"Checkpoint {path} is corrupt or not a PyTorch checkpoint (it does not unpickle); "
                             "pass another ckpt_path.") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
        raise SpeechexpError(f"Checkpoint {path} is corrupt or unreadable ({exc}); pass another ckpt_path.") from None
    if not isinstance(checkpoint, dict) or CONFIG_KEY not in checkpoint or "state_dict" not in checkpoint:
        raise SpeechexpError(f"Checkpoint {path} holds no speechexp config; use one written by speechexp-train.")
    return checkpoint


def describe(config: dict) -> str:
    """``task=separation model=LSTMSeparator`` for a run config."""
    model = str((config.get("model") or {}).get("_target_", "?")).rsplit(".", 1)[-1]
    return f"task={(config.get('task') or {}).get('name', '?')} model={model}"


def check_fits(checkpoint: dict, run_config: dict, path: str | Path) -> None:
    """Refuse a checkpoint trained for another task or model than ``run_config``'s."""
    trained, wanted = describe(checkpoint[CONFIG_KEY]), describe(run_config)
    if trained != wanted:
        raise SpeechexpError(f"Checkpoint {path} was trained for {trained}, but this run is {wanted}; "
                             "pass a checkpoint of the same task and model, or use speechexp-eval, which "
                             "rebuilds the checkpoint's own configuration.")


def check_weights_fit(module: torch.nn.Module, checkpoint: dict, run_config: dict, path: str | Path) -> None:
    """Refuse fine-tuning ``module`` from a checkpoint whose weights it cannot take (a model
    of the same class built with other sizes), naming the model settings that differ."""
    own, theirs = module.state_dict(), checkpoint["state_dict"]
    misfits = sorted(name for name in own.keys() | theirs.keys()
                     if name not in own or name not in theirs or tuple(own[name].shape) != tuple(theirs[name].shape))
    if not misfits:
        return
    trained = checkpoint[CONFIG_KEY]
    settings = (differing_settings(trained.get("model") or {}, run_config.get("model") or {}, "model")
                or differing_settings(data_sizing(trained), data_sizing(run_config), "dataset.datamodule"))
    name = misfits[0]
    shapes = (f"{name} is {list(theirs[name].shape)} there and {list(own[name].shape)} here"
              if name in own and name in theirs else f"{name} is {'missing there' if name in own else 'not in this model'}")
    said = "; ".join(settings[:3]) or shapes
    raise SpeechexpError(f"Checkpoint {path} holds weights of another size than this run's model ({said}); fine-tune "
                         "with the checkpoint's model settings, or train without ckpt_path.")


# the datamodule settings that size a model (the asr_emotion features and vocabulary)
DATA_SIZING_KEYS = ("n_mels", "vocabulary", "umlauts", "pitch", "phonemes")


def data_sizing(config: dict) -> dict:
    """The settings of ``config``'s datamodule that size its model's weights."""
    datamodule = (config.get("dataset") or {}).get("datamodule") or {}
    return {key: datamodule.get(key) for key in DATA_SIZING_KEYS if key in datamodule}


def differing_settings(trained: dict, wanted: dict, prefix: str) -> list[str]:
    """``["model.units=128 in the checkpoint, 32 here", ...]`` for the leaves that differ and
    can shape weights: sizes are whole numbers, structure is chosen by names and switches, so
    fractions (a dropout, a warp) are left out."""
    found = []
    for key in sorted(trained.keys() | wanted.keys(), key=str):
        mine, theirs = wanted.get(key), trained.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            found += differing_settings(theirs, mine, f"{prefix}.{key}")
        elif mine != theirs and not isinstance(mine, float) and not isinstance(theirs, float):
            found.append(f"{prefix}.{key}={theirs} in the checkpoint, {mine} here")
    return found


def scheduler_target(config: dict) -> str | None:
    node = config.get("scheduler") or {}
    return node.get("_target_") if isinstance(node, dict) else None


def scheduler_option(target: str) -> str:
    """``scheduler=<option>`` whose YAML names ``target``, else the class name."""
    from speechexp.config import CONF_DIR  # noqa: PLC0415
    from speechexp.config.registry import read_yaml  # noqa: PLC0415

    for path in sorted((Path(CONF_DIR) / "scheduler").glob("*.yaml")):
        if read_yaml(path).get("_target_") == target:
            return f"scheduler={path.stem}"
    return f"scheduler {target.rsplit('.', 1)[-1]}"


def check_schedule_fits(checkpoint: dict, run_config: dict, path: str | Path) -> None:
    """Refuse continuing a checkpoint's schedule state with another kind of schedule."""
    trained, wanted = scheduler_target(checkpoint[CONFIG_KEY]), scheduler_target(run_config)
    if checkpoint.get("lr_schedulers") and trained and wanted and trained != wanted:
        raise SpeechexpError(f"Checkpoint {path} was trained with {scheduler_option(trained)}, whose saved state "
                             f"cannot drive this run's {scheduler_option(wanted)}; continue with "
                             f"{scheduler_option(trained)}, or train without ckpt_path.")


def load_weights(module: torch.nn.Module, checkpoint: dict, path: str | Path) -> None:
    """Load the checkpoint's ``state_dict`` into ``module``, with one sentence when they differ,
    and, for a LightningModule, what it saved beside the weights (its ``on_load_checkpoint``
    hook, as Lightning calls it when it restores a run)."""
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpeechexpError(f"Checkpoint {path} does not fit the model its config describes ({first}); "
                             "it was edited or written by another version of speechexp.") from None
    if hasattr(module, "on_load_checkpoint"):
        module.on_load_checkpoint(checkpoint)
