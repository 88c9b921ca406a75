"""Re-evaluate a checkpoint alone: ``speechexp-eval ckpt_path=PATH``.

The checkpoint carries the resolved training config, which rebuilds the dataset, model
and task; the test exports and ``results.json`` go to a new run directory. Checkpoints
are loaded as data (``weights_only``): one whose pickle would run code is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from speechexp.checkpoints import CONFIG_KEY, load_checkpoint, load_weights
from speechexp.config import CONF_DIR  # importing registers schemas and resolvers
from speechexp.errors import SpeechexpError
from speechexp.rundir import new_run_id
from speechexp.runtime import (
    RunRecord, build_task, build_trainer, entry_point, instantiate_checked, instantiate_each, prepare_dataset,
    run_dir_of, stage_metrics,
)

log = logging.getLogger("speechexp.evaluate")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint's model on its dataset's test split; return the metrics."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SpeechexpError("speechexp-eval needs a checkpoint: pass ckpt_path=PATH to a .ckpt file written by "
                             "speechexp-train (e.g. <run dir>/checkpoints/last.ckpt).")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg, run_dir = OmegaConf.create(checkpoint[CONFIG_KEY]), run_dir_of(cfg)
    with RunRecord(run_dir, None, new_run_id(), checkpoint=str(Path(cfg.ckpt_path).resolve())) as record:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dataset_dir = prepare_dataset(run_cfg.dataset, cfg.paths.data_dir)
        record.extra["dataset_dir"] = str(dataset_dir)
        datamodule = instantiate_checked(run_cfg.dataset.datamodule, dataset_dir=str(dataset_dir))
        task = build_task(run_cfg, datamodule, export_dir=str(run_dir))
        load_weights(task, checkpoint, cfg.ckpt_path)
        trainer = build_trainer(cfg.trainer, instantiate_each(cfg.logger), callbacks=[])
        trainer.test(task, datamodule=datamodule)
        record.metrics.update(stage_metrics(trainer, ("test",)))
    log.info("Run directory: %s", run_dir)
    return record.metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
@entry_point
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
