"""Re-evaluate a checkpoint alone: ``speechexp-eval ckpt_path=PATH``.

The checkpoint carries the resolved training config, which rebuilds the dataset, model
and task; the test exports and ``results.json`` go to a new run directory. Checkpoints
are loaded as data (``weights_only``): one whose pickle would run code is refused.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from speechexp.config import CONF_DIR, prepare_command_line  # importing registers schemas and resolvers
from speechexp.errors import SpeechexpError
from speechexp.config.compatibility import check_checkpoint_decoder, check_dataset_requirements
from speechexp.config.machine import check_trainer
from speechexp.config.ranges import check_ranges
from speechexp.runs.entry import entry_point

log = logging.getLogger("speechexp.evaluate")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint's model on its dataset's test split; return the metrics."""
    # torch and Lightning load here, not at import: `speechexp-eval --help` stays fast
    from speechexp.runs.build import build_task  # noqa: PLC0415
    from speechexp.runs.checkpoints import CONFIG_KEY, load_checkpoint, load_weights  # noqa: PLC0415
    from speechexp.runs.run import Run  # noqa: PLC0415

    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SpeechexpError("speechexp-eval needs a checkpoint: pass ckpt_path=PATH to a .ckpt file written by "
                             "speechexp-train (e.g. <run dir>/checkpoints/last.ckpt).")
    check_ranges(cfg)
    check_trainer(cfg.trainer)  # a GPU this machine lacks, settings Lightning refuses: before any file
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    if cfg.get("dataset") is not None:
        run_cfg.dataset = dataset_read_like(cfg.dataset, run_cfg.dataset)
    check_dataset_requirements(run_cfg.dataset, cfg.paths.data_dir)  # a missing folder or engine: nothing written
    if cfg.get("decoder") is not None:  # a CTC decoder for a separation checkpoint: refused before the run dir too
        check_checkpoint_decoder(run_cfg)
    with Run.for_evaluation(cfg) as run:
        datamodule = run.datamodule(run_cfg.dataset)
        task = build_task(run_cfg, datamodule, export_dir=str(run.dir),
                          **({"decoder": cfg.decoder} if cfg.get("decoder") is not None else {}))
        load_weights(task, checkpoint, cfg.ckpt_path)
        run.test(run.trainer(), task, datamodule)
    log.info("Run directory: %s", run.dir)
    return run.metrics


# what a checkpoint's model and labels fix about how any dataset must be read
READ_LIKE_TRAINING = ("sample_rate", "n_mels", "n_fft", "hop_length", "win_length", "feature_backend", "emotions",
                      "vocabulary", "umlauts", "pitch", "phonemes")


def dataset_read_like(dataset: DictConfig, trained_on: DictConfig) -> DictConfig:
    """``dataset`` with the datamodule settings of the checkpoint's dataset that the model
    depends on (features, vocabulary, emotion labels); refused when the kinds differ."""
    mine, theirs = dataset.datamodule, trained_on.datamodule
    if mine.get("_target_") != theirs.get("_target_"):
        raise SpeechexpError(f"dataset={dataset.name} is read by {mine.get('_target_')}, but this checkpoint was "
                             f"trained on {theirs.get('_target_')} data; pick a dataset of the checkpoint's kind.")
    dataset = dataset.copy()
    for key in READ_LIKE_TRAINING:
        if key in theirs:
            dataset.datamodule[key] = theirs[key]
    return dataset


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
@entry_point
def hydra_main(cfg: DictConfig) -> None:
    evaluate(cfg)


@entry_point
def main() -> None:
    """``speechexp-eval``: the command line as every entry point takes it, then Hydra."""
    prepare_command_line()
    hydra_main()


if __name__ == "__main__":
    main()
