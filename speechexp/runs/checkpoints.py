"""Checkpoints are data, not code: load them with ``weights_only=True`` and check they fit.

A speechexp checkpoint holds tensors and plain data only (the run config is stored as a
plain container, ``speechexp_config``), so nothing in it needs unpickling code. Anything
else is refused before it can run.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from speechexp.errors import SpeechexpError

CONFIG_KEY = "speechexp_config"


def load_checkpoint(path: str | Path) -> dict:
    """Load ``path`` as tensors and plain data only.

    Raises:
        SpeechexpError: the file is missing, unreadable, holds objects whose unpickling
            could run code, or was not written by speechexp-train.
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechexpError(f"Checkpoint {path} does not exist; pass ckpt_path=PATH to a .ckpt file "
                             "written by speechexp-train (e.g. <run dir>/checkpoints/last.ckpt).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise SpeechexpError(f"Checkpoint {path} holds objects other than tensors and plain data ({reason}), "
                             "so loading it could run code; refused: use a checkpoint written by "
                             "speechexp-train.") from None
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


def load_weights(module: torch.nn.Module, checkpoint: dict, path: str | Path) -> None:
    """Load the checkpoint's ``state_dict`` into ``module``, with one sentence when they differ."""
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpeechexpError(f"Checkpoint {path} does not fit the model its config describes ({first}); "
                             "it was edited or written by another version of speechexp.") from None
