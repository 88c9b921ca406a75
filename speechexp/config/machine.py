"""Whether this machine and Lightning can run the trainer (or the device) a config or a call
asks for.

Lightning and torch find out late and say it their own way (``No supported gpu backend
found!``, ``Torch not compiled with CUDA enabled``, ``Precision 'bf17' is invalid``): a run
would prepare its data first, then fail with a run dir written. These checks run before
anything is written; a missing GPU is said with what to pass instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from speechexp.errors import SpeechexpError

GPU_ACCELERATORS = ("gpu", "cuda")


def visible_gpus() -> int:
    """How many CUDA devices torch can use here (0 on a CPU-only build or without a driver)."""
    import torch  # noqa: PLC0415

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def why_no_gpu() -> str:
    """Why torch sees no CUDA device: its build, or the machine."""
    import torch  # noqa: PLC0415

    if torch.version.cuda is None and torch.version.hip is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return f"torch {torch.__version__} sees no CUDA device (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them)"


def apple_gpu() -> bool:
    """Whether Lightning's ``accelerator=gpu`` can mean Apple's MPS here."""
    import torch  # noqa: PLC0415

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def requested_gpus(devices: Any) -> int | None:
    """How many GPUs ``trainer.devices`` needs to exist: ``2`` → 2, ``[0, 3]`` or ``"0,3"`` →
    4 (the highest index + 1); ``None`` where Lightning picks (``-1``, ``"auto"``)."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return devices if devices > 0 else None
    if isinstance(devices, Sequence) and not isinstance(devices, str):  # also OmegaConf's ListConfig
        return max((int(d) + 1 for d in devices), default=None)
    text = str(devices).strip()
    if text.lstrip("-").isdigit():
        return requested_gpus(int(text))
    if "," in text:
        return requested_gpus([d for d in text.split(",") if d.strip()])
    return None


def check_trainer_devices(trainer_cfg: Any) -> None:
    """Refuse a trainer on GPUs this machine does not have (``trainer=gpu`` on a laptop,
    ``trainer.devices=4`` on a node with two); CPU, ``auto`` and other accelerators are
    left to Lightning."""
    if not trainer_cfg:
        return
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator not in GPU_ACCELERATORS:
        return
    gpus = visible_gpus()
    if gpus == 0:
        if accelerator == "gpu" and apple_gpu():
            return
        raise SpeechexpError(f"This run asks for a GPU (trainer.accelerator={accelerator}), and {why_no_gpu()}; "
                             "run with trainer=cpu, or on a machine with a GPU and a CUDA build of torch.")
    wanted = requested_gpus(trainer_cfg.get("devices"))
    if wanted is not None and wanted > gpus:
        raise SpeechexpError(f"trainer.devices={trainer_cfg.get('devices')} needs {wanted} GPUs, and torch sees "
                             f"{gpus} here; pass trainer.devices={gpus} or fewer (trainer.devices=-1: all of them).")


def check_device(device: Any) -> None:
    """Refuse a torch ``device`` this machine cannot use (``"gpu"``, ``"cuda"`` without a GPU,
    ``"cuda:3"`` with two)."""
    import torch  # noqa: PLC0415

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise SpeechexpError(f"device={device!r} is not a torch device; pass 'cpu', 'cuda' or 'cuda:N'.") from None
    if parsed.type != "cuda":
        return
    gpus = visible_gpus()
    if gpus == 0:
        raise SpeechexpError(f"device={device!r} needs a GPU, and {why_no_gpu()}; pass device='cpu'.")
    if parsed.index is not None and parsed.index >= gpus:
        indices = "cuda:0" if gpus == 1 else f"cuda:0 to cuda:{gpus - 1}"
        raise SpeechexpError(f"device={device!r} is not here: torch sees {gpus} GPU{'s' if gpus > 1 else ''} "
                             f"({indices}); pass one of those, or device='cpu'.")


# the precisions a run picks among (Lightning also takes their aliases: 32, 16, "bf16", ...)
USUAL_PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "64-true", "16-true", "bf16-true")


def check_trainer_builds(trainer_cfg: Any) -> None:
    """Build the trainer once, without loggers, callbacks or checkpoints, and drop it (about
    20 ms): Lightning then judges its accelerator, devices, precision, strategy and budget
    before a run dir or data exist, instead of after. Lightning's own notes are kept quiet."""
    if not trainer_cfg or "_target_" not in trainer_cfg:
        return
    from hydra.utils import instantiate  # noqa: PLC0415

    quiet = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.WARNING)
        instantiate(trainer_cfg, logger=False, callbacks=[], enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
    except Exception as exc:  # noqa: BLE001 - Lightning raises many types for settings it refuses
        cause = exc
        while cause.__cause__ is not None:  # Hydra's InstantiationException wraps Lightning's error
            cause = cause.__cause__
        said = (str(cause).strip().splitlines() or [type(cause).__name__])[0].rstrip(".")
        if said.startswith("Precision ") and " is invalid" in said:  # Lightning lists every alias: name the usual ones
            raise SpeechexpError(f"trainer.precision={trainer_cfg.get('precision')} is not a precision Lightning "
                                 f"takes; pass trainer.precision={' or '.join(USUAL_PRECISIONS[:3])} (also "
                                 f"{', '.join(USUAL_PRECISIONS[3:])}).") from None
        raise SpeechexpError(f"Lightning refuses this run's trainer settings ({said}); fix that trainer.* setting, "
                             "or pick a preset: trainer=cpu, gpu, ddp or ddp_sim.") from None
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def check_trainer(trainer_cfg: Any) -> None:
    """Refuse a trainer this machine cannot run (:func:`check_trainer_devices`) or whose
    settings Lightning refuses (:func:`check_trainer_builds`), in one sentence."""
    check_trainer_devices(trainer_cfg)
    check_trainer_builds(trainer_cfg)
