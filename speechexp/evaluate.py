"""Re-evaluate a checkpoint alone: ``speechexp-eval ckpt_path=PATH``.

The checkpoint carries the resolved training config, which rebuilds the dataset, model
and task; the test exports and ``results.json`` go to a new run directory.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from speechexp.config import CONF_DIR  # importing registers schemas and resolvers
from speechexp.errors import SpeechexpError
from speechexp.runtime import (
    build_task, build_trainer, instantiate_checked, instantiate_each, prepare_dataset,
    report_user_errors, run_dir_of, stage_metrics, write_results,
)

log = logging.getLogger("speechexp.evaluate")


def load_checkpoint(path: str | Path) -> tuple[dict, DictConfig]:
    """Load a checkpoint and the run config stored in it."""
    path = Path(path)
    if not path.is_file():
        raise SpeechexpError(f"Checkpoint {path} does not exist; pass ckpt_path=PATH to a .ckpt file.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise SpeechexpError(f"Checkpoint {path} is corrupt or unreadable ({exc}); pass another ckpt_path.") from None
    if "speechexp_config" not in checkpoint:
        raise SpeechexpError(f"Checkpoint {path} holds no speechexp config; use one written by speechexp-train.")
    return checkpoint, OmegaConf.create(checkpoint["speechexp_config"])


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint's model on its dataset's test split; return the metrics."""
    started, run_dir = time.time(), run_dir_of(cfg)
    metrics: dict[str, float] = {}
    try:
        checkpoint, run_cfg = load_checkpoint(cfg.ckpt_path)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dataset_dir = prepare_dataset(run_cfg.dataset, cfg.paths.data_dir)
        datamodule = instantiate_checked(run_cfg.dataset.datamodule, dataset_dir=str(dataset_dir))
        task = build_task(run_cfg, datamodule, export_dir=str(run_dir))
        task.load_state_dict(checkpoint["state_dict"])
        trainer = build_trainer(cfg.trainer, instantiate_each(cfg.logger), callbacks=[])
        trainer.test(task, datamodule=datamodule)
        metrics.update(stage_metrics(trainer, ("test",)))
    except BaseException as exc:
        write_results(run_dir, metrics, "failed", started, error=str(exc) or type(exc).__name__)
        raise
    write_results(run_dir, metrics, "completed", started, checkpoint=str(Path(cfg.ckpt_path).resolve()),
                  dataset_dir=str(dataset_dir))
    log.info("Run directory: %s", run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
@report_user_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
