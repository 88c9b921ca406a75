"""Media for whatever loggers a run has: audio, images and tables in W&B, audio and image
summaries in TensorBoard (other loggers, e.g. CSV, get nothing).

Tasks call these at the end of their test stage with a bounded number of examples
(``task.module.n_media``), so a run's W&B folder stays small; offline W&B runs keep the
files and ``wandb sync`` uploads them.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

log = logging.getLogger("speechexp")
WANDB = ("WandbLogger",)
TENSORBOARD = ("TensorBoardLogger",)


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Log how long the block took (what media and reports cost a run: docs/results.md)."""
    started = time.perf_counter()
    yield
    log.info("%s in %.2f s", what, time.perf_counter() - started)


def _kind(logger: Any) -> str | None:
    name = type(logger).__name__
    return "wandb" if name in WANDB else "tensorboard" if name in TENSORBOARD else None


def takes_media(loggers: Iterable[Any]) -> bool:
    """Whether any of ``loggers`` keeps media (W&B, TensorBoard); a CSV log keeps none."""
    return any(_kind(logger) for logger in loggers)


def _png_array(path: str | os.PathLike) -> np.ndarray:
    """A PNG as ``uint8 [height, width, 3]``."""
    import matplotlib.image as mpimg  # noqa: PLC0415

    image = mpimg.imread(str(path))
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return image[..., :3]


def _compact(path: str | os.PathLike) -> Any:
    """The PNG as a 256-colour PIL image (what W&B stores: about 4x smaller)."""
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    from speechexp.viz.png import compact_png  # noqa: PLC0415

    return Image.open(io.BytesIO(compact_png(path)))


def log_images(loggers: Iterable[Any], images: dict[str, str | os.PathLike], step: int = 0,
               captions: dict[str, str] | None = None) -> None:
    """Log each PNG file in ``images`` (``{key: path}``) as an image (one W&B step for all)."""
    captions = captions or {}
    for logger in loggers:
        kind = _kind(logger)
        if kind == "wandb" and images:
            import wandb  # noqa: PLC0415

            logger.experiment.log({key: wandb.Image(_compact(path), caption=captions.get(key))
                                   for key, path in images.items()})
        elif kind == "tensorboard" and images:
            for key, path in images.items():
                logger.experiment.add_image(key, _png_array(path), global_step=step, dataformats="HWC")
            logger.experiment.flush()


def log_audio(loggers: Iterable[Any], clips: dict[str, np.ndarray], sample_rate: int, step: int = 0,
              captions: dict[str, str] | None = None) -> None:
    """Log each clip ``[time]`` (float, -1..1) in ``clips`` as audio at ``sample_rate`` (one
    W&B step for all; in TensorBoard a caption is a text summary beside its clip)."""
    captions = captions or {}
    clips = {key: np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) for key, audio in clips.items()}
    for logger in loggers:
        kind = _kind(logger)
        if kind == "wandb" and clips:
            import wandb  # noqa: PLC0415

            logger.experiment.log({key: wandb.Audio(audio, sample_rate=int(sample_rate), caption=captions.get(key))
                                   for key, audio in clips.items()})
        elif kind == "tensorboard" and clips:
            import torch  # noqa: PLC0415

            for key, audio in clips.items():
                logger.experiment.add_audio(key, torch.from_numpy(audio).unsqueeze(0), global_step=step,
                                            sample_rate=int(sample_rate))
                if captions.get(key):
                    logger.experiment.add_text(key + "/caption", captions[key], global_step=step)
            logger.experiment.flush()


def log_table(loggers: Iterable[Any], key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
              step: int = 0) -> None:
    """A table in W&B; a Markdown table as text in TensorBoard."""
    for logger in loggers:
        kind = _kind(logger)
        if kind == "wandb":
            logger.log_table(key=key, columns=list(columns), data=[list(r) for r in rows])
        elif kind == "tensorboard":
            lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |" for r in rows]
            logger.experiment.add_text(key, "\n".join(lines), global_step=step)
            logger.experiment.flush()
