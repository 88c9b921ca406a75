"""Train and test one configuration: ``speechexp-train [experiment=NAME] [key=value ...]``.

Writes into the run directory: the resolved config (``config.yaml``), ``run.json`` (command
line, versions, git commit), checkpoints (``checkpoints/last.ckpt`` and the best), the
task's exports and ``results.json``. Running the same command into the same run dir again
skips a completed run and resumes an interrupted one (see :mod:`speechexp.runs.plan`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from speechexp.config import CONF_DIR, prepare_command_line  # importing registers schemas and resolvers
from speechexp.config.compatibility import check_command_line, check_composed
from speechexp.config.machine import check_trainer
from speechexp.runs.entry import entry_point, in_multirun

log = logging.getLogger("speechexp.train")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test with the best checkpoint; return the final metrics."""
    # torch and Lightning load here, not at import: `speechexp-train --help` stays fast
    from speechexp.runs.build import build_task  # noqa: PLC0415
    from speechexp.runs.checkpoints import (  # noqa: PLC0415
        check_fits, check_schedule_fits, check_weights_fit, load_checkpoint)
    from speechexp.runs.run import Run  # noqa: PLC0415

    if not in_multirun():
        check_composed(cfg)  # before the run dir is planned: a refused single run writes nothing
        check_trainer(cfg.trainer)
        check_start_checkpoint(cfg)
    run = Run.for_training(cfg)
    if run.skipped:
        return run.metrics
    with run:
        check_composed(cfg)  # before anything is prepared; a refused sweep job is recorded as failed
        check_trainer(cfg.trainer)  # on the machine that runs the job (a cluster node, not the login node)
        if run.start_from and not run.resuming:  # a checkpoint to test or fine-tune: check it first
            checkpoint = load_checkpoint(run.start_from)
            check_fits(checkpoint, run.config, run.start_from)
            if cfg.train:
                check_schedule_fits(checkpoint, run.config, run.start_from)
        datamodule = run.datamodule(cfg.dataset)
        task = build_task(cfg, datamodule)
        if run.start_from and not run.resuming:  # its weights must fit this model's sizes too
            check_weights_fit(task, checkpoint, run.config, run.start_from)
        trainer = run.trainer()
        if cfg.train:
            run.fit(trainer, task, datamodule)
        if cfg.test:  # the best weights; with train=false, those of ckpt_path
            run.test(trainer, task, datamodule)
    log.info("Run directory: %s", run.dir)
    return run.metrics


def check_start_checkpoint(cfg: DictConfig) -> None:
    """Refuse a ``ckpt_path`` from elsewhere that is missing, was trained for another task,
    model or kind of schedule, or holds weights of other sizes, before the run dir is planned
    (a checkpoint of the run's own dir is the plan's to judge: it resumes or continues).

    The sizes are checked on the run's model built from its config alone, with the
    checkpoint's emotion labels, and the emotions the run's dataset lists against those; a
    dataset that lists none (null: the data's own) shows its number only once the data is read,
    so the run checks the weights again (:func:`train`)."""
    from speechexp.runs.build import check_emotions_fit, resolved_container, task_without_data  # noqa: PLC0415
    from speechexp.runs.checkpoints import (  # noqa: PLC0415
        check_fits, check_schedule_fits, check_weights_fit, load_checkpoint)
    from speechexp.runs.plan import inside  # noqa: PLC0415

    path = cfg.get("ckpt_path")
    if not path or inside(Path(cfg.paths.output_dir), path):
        return
    checkpoint, config = load_checkpoint(path), resolved_container(cfg)
    check_fits(checkpoint, config, path)
    if cfg.train:
        check_schedule_fits(checkpoint, config, path)
    check_emotions_fit(checkpoint, config, path)  # a dataset listing no emotions (separation's) passes
    task = task_without_data(config, checkpoint, path)
    if task is not None:
        check_weights_fit(task, checkpoint, config, path)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@entry_point
def hydra_main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    # the objective a Hydra sweeper optimises: the best epoch's score when checkpoints kept one
    return metrics.get(f"{cfg.task.monitor}_best", metrics.get(cfg.task.monitor))


@entry_point
def main() -> None:
    """``speechexp-train``: refuse options the experiment's task cannot use, then run Hydra."""
    prepare_command_line()
    check_command_line(sys.argv[1:], CONF_DIR)
    hydra_main()


if __name__ == "__main__":
    main()
