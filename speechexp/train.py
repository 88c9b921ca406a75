"""Train and test one configuration: ``speechexp-train [experiment=NAME] [key=value ...]``.

Writes into the run directory: the resolved config (``.hydra/``), checkpoints
(``checkpoints/last.ckpt`` and the best), the task's exports and ``results.json``.
"""

from __future__ import annotations

import logging
import time

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from speechexp.config import CONF_DIR  # importing registers schemas and resolvers
from speechexp.io import write_text_atomic
from speechexp.runtime import (
    build_task, build_trainer, check_compatibility, instantiate_checked, instantiate_each,
    prepare_dataset, report_user_errors, resolved_container, run_dir_of, stage_metrics, write_results,
)

log = logging.getLogger("speechexp.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test with the best checkpoint; return the final metrics."""
    started, run_dir = time.time(), run_dir_of(cfg)
    metrics: dict[str, float] = {}
    try:
        check_compatibility(cfg)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dataset_dir = prepare_dataset(cfg.dataset, cfg.paths.data_dir)
        datamodule = instantiate_checked(cfg.dataset.datamodule, dataset_dir=str(dataset_dir))
        task = build_task(cfg, datamodule)
        task.run_config = resolved_container(cfg)
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(task.run_config))
        trainer = build_trainer(cfg.trainer, instantiate_each(cfg.logger), instantiate_each(cfg.callbacks))
        for logger in trainer.loggers:  # wandb config / hparams.yaml: runs compare by their settings
            logger.log_hyperparams(task.run_config)
        if cfg.train:
            trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
            metrics.update(stage_metrics(trainer, ("train", "val")))
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint else ""
        if checkpoint is not None and checkpoint.best_model_score is not None:
            metrics[f"{cfg.task.monitor}_best"] = float(checkpoint.best_model_score)
        if cfg.test:  # the best weights; with train=false, those of ckpt_path
            trainer.test(task, datamodule=datamodule, ckpt_path=best or cfg.ckpt_path, weights_only=False)
            metrics.update(stage_metrics(trainer, ("test",)))
    except BaseException as exc:
        write_results(run_dir, metrics, "failed", started, error=str(exc) or type(exc).__name__)
        raise
    write_results(run_dir, metrics, "completed", started, best_checkpoint=best or None,
                  dataset_dir=str(dataset_dir))
    log.info("Run directory: %s", run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@report_user_errors
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    # the objective a Hydra sweeper optimises: the best epoch's score when checkpoints kept one
    return metrics.get(f"{cfg.task.monitor}_best", metrics.get(cfg.task.monitor))


if __name__ == "__main__":
    main()
