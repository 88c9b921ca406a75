"""Train and test one configuration: ``speechexp-train [experiment=NAME] [key=value ...]``.

Writes into the run directory: the resolved config (``config.yaml``), ``run.json`` (command
line, versions, git commit), checkpoints (``checkpoints/last.ckpt`` and the best), the
task's exports and ``results.json``. Running the same command into the same run dir again
skips a completed run and resumes an interrupted one (see :mod:`speechexp.rundir`).
"""

from __future__ import annotations

import logging
import sys

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from speechexp.checkpoints import check_fits, load_checkpoint
from speechexp.compatibility import check_command_line
from speechexp.config import CONF_DIR  # importing registers schemas and resolvers
from speechexp.rundir import plan_run
from speechexp.runtime import (
    RunRecord, build_task, build_trainer, check_compatibility, entry_point, instantiate_checked, instantiate_each,
    prepare_dataset, resolved_container, run_dir_of, set_threads, stage_metrics,
)
from speechexp.tracking import configure_wandb

log = logging.getLogger("speechexp.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test with the best checkpoint; return the final metrics."""
    run_dir, run_config = run_dir_of(cfg), resolved_container(cfg)
    plan = plan_run(run_dir, run_config, resume=cfg.resume)
    if plan.action == "skip":
        return {k: v for k, v in plan.previous_results.items() if "/" in k and isinstance(v, float)}
    start_from = plan.checkpoint or cfg.ckpt_path
    set_threads(cfg)
    with RunRecord(run_dir, run_config, plan.run_id, resumed_from=plan.checkpoint and str(plan.checkpoint)) as record:
        check_compatibility(cfg)  # before anything is prepared; a failed sweep job is recorded too
        if cfg.ckpt_path and plan.checkpoint is None:  # a checkpoint to test or fine-tune: check it first
            check_fits(load_checkpoint(cfg.ckpt_path), run_config, cfg.ckpt_path)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dataset_dir = prepare_dataset(cfg.dataset, cfg.paths.data_dir)
        record.extra["dataset_dir"] = str(dataset_dir)
        datamodule = instantiate_checked(cfg.dataset.datamodule, dataset_dir=str(dataset_dir))
        task = build_task(cfg, datamodule)
        task.run_config = run_config
        configure_wandb(cfg, plan.run_id)
        trainer = build_trainer(cfg.trainer, instantiate_each(cfg.logger), instantiate_each(cfg.callbacks))
        for logger in trainer.loggers:  # wandb config / hparams.yaml: runs compare by their settings
            logger.log_hyperparams(run_config)
        if cfg.train:
            trainer.fit(task, datamodule=datamodule, ckpt_path=start_from, weights_only=True)
            record.metrics.update(stage_metrics(trainer, ("train", "val")))
        checkpoint = trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint else ""
        if checkpoint is not None and checkpoint.best_model_score is not None:
            record.metrics[f"{cfg.task.monitor}_best"] = float(checkpoint.best_model_score)
        record.extra["best_checkpoint"] = best or None
        if cfg.test:  # the best weights; with train=false, those of ckpt_path
            trainer.test(task, datamodule=datamodule, ckpt_path=best or start_from, weights_only=True)
            record.metrics.update(stage_metrics(trainer, ("test",)))
    log.info("Run directory: %s", run_dir)
    return record.metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@entry_point
def hydra_main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    # the objective a Hydra sweeper optimises: the best epoch's score when checkpoints kept one
    return metrics.get(f"{cfg.task.monitor}_best", metrics.get(cfg.task.monitor))


@entry_point
def main() -> None:
    """``speechexp-train``: refuse options the experiment's task cannot use, then run Hydra."""
    check_command_line(sys.argv[1:], CONF_DIR)
    hydra_main()


if __name__ == "__main__":
    main()
