"""Use a trained model on your own audio: ``speechexp-infer ckpt_path=CKPT input=PATH``.

``input`` is a file, a folder (searched recursively) or a quoted glob; any rate, channel
count and sample format soundfile (or librosa) reads. The run directory gets
``predictions.csv`` (one row per file, in input order: ``input, status, error,
duration_s, sample_rate`` and the task's columns), ``separated/`` WAVs (separation) or
``words.jsonl`` (asr_emotion), ``run.json`` and ``results.json``. A file that cannot be
read is a ``failed`` row; every other file is still processed, and the command ends with
one ``Error: k of n files failed: ...`` line and exit status 1. See
:mod:`speechexp.inference.predict`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from speechexp.config import CONF_DIR, prepare_command_line  # importing registers schemas and resolvers
from speechexp.errors import SpeechexpError
from speechexp.config.machine import check_trainer
from speechexp.config.ranges import check_ranges
from speechexp.runs.entry import entry_point

log = logging.getLogger("speechexp.infer")


def infer(cfg: DictConfig) -> list[dict]:
    """Predict every file of ``cfg.input`` with ``cfg.ckpt_path``; return the rows of
    ``predictions.csv`` (empty on DDP processes other than rank 0).

    Raises:
        SpeechexpError: a missing setting, input or checkpoint (before anything is written),
            or, after ``predictions.csv`` is written, files that failed.
    """
    for key, example in (("ckpt_path", "ckpt_path=<run dir>/checkpoints/last.ckpt"), ("input", "input=FILE_OR_FOLDER")):
        if OmegaConf.is_missing(cfg, key):
            raise SpeechexpError(f"speechexp-infer needs {key}: pass {example}.")
    check_ranges(cfg)
    check_trainer(cfg.trainer)  # a GPU this machine lacks, settings Lightning refuses: before any file
    # torch and Lightning load here, not at import: `speechexp-infer --help` stays fast
    from speechexp.inference.files import assign_speakers, collect_inputs  # noqa: PLC0415
    from speechexp.inference.predict import predict_files  # noqa: PLC0415
    from speechexp.inference.separation import check_windows  # noqa: PLC0415
    from speechexp.runs.checkpoints import load_checkpoint  # noqa: PLC0415
    from speechexp.runs.run import Run  # noqa: PLC0415

    # a missing input, speakers table or checkpoint, windows that do not advance: one sentence, nothing written
    check_windows(cfg.chunk_seconds, cfg.overlap_seconds)  # a separation checkpoint's; the defaults pass for others
    assign_speakers(collect_inputs(str(cfg.input))[0], cfg.get("speakers"))
    checkpoint = load_checkpoint(cfg.ckpt_path)
    if cfg.get("decoder") is not None:  # a CTC decoder for a separation checkpoint: refused here too
        from speechexp.config.compatibility import check_checkpoint_decoder  # noqa: PLC0415
        from speechexp.runs.checkpoints import CONFIG_KEY  # noqa: PLC0415

        check_checkpoint_decoder(checkpoint[CONFIG_KEY])
    with Run.for_evaluation(cfg) as run:
        rows, per_process = predict_files(cfg, Path(run.dir))
        run.writes_results = bool(per_process)  # rank 0 writes results.json; other DDP processes return
        failed = sum(row["status"] != "ok" for row in rows)
        run.extra.update(files=len(rows), failed_files=failed, files_per_process=per_process)
    if rows:
        log.info("Predictions: %s", Path(run.dir) / "predictions.csv")
    if failed:
        bad = [r for r in rows if r["status"] != "ok"]
        first = "; ".join(r["error"] for r in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        raise SpeechexpError(f"{failed} of {len(rows)} files failed: {first} (every other file was processed; "
                             f"see {Path(run.dir) / 'predictions.csv'}).")
    return rows


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="infer")
@entry_point
def hydra_main(cfg: DictConfig) -> None:
    infer(cfg)


@entry_point
def main() -> None:
    """``speechexp-infer``: the command line as every entry point takes it, then Hydra."""
    prepare_command_line()
    hydra_main()


if __name__ == "__main__":
    main()
