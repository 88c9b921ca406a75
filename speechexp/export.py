"""Ship a trained model: ``speechexp-export ckpt_path=CKPT format=onnx|torchscript``.

Writes ``model.onnx`` (or ``model.pt``) into the run directory (or ``output=PATH``), a
graph from the raw waveform at the model's sample rate with dynamic batch and time
axes, with ``<file>.json`` naming its inputs, outputs, labels and sample rate (see
:mod:`speechexp.inference.export`). With ``verify=true`` (the default) the written file
is run on noise (onnxruntime, or ``torch.jit.load``) and compared with PyTorch: the
largest absolute differences go to ``results.json``, and one above ``tolerance`` is an
error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from speechexp.config import CONF_DIR, prepare_command_line  # importing registers schemas and resolvers
from speechexp.errors import SpeechexpError
from speechexp.runs.entry import entry_point

log = logging.getLogger("speechexp.export")


def export(cfg: DictConfig) -> dict[str, float]:
    """Export ``cfg.ckpt_path`` as ``cfg.format``; return the verification's differences."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SpeechexpError("speechexp-export needs a checkpoint: pass ckpt_path=PATH to a .ckpt file written by "
                             "speechexp-train (e.g. <run dir>/checkpoints/last.ckpt).")
    # torch loads here, not at import: `speechexp-export --help` stays fast
    from speechexp.inference.export import FORMATS, example_inputs, export_model, graph_of, max_differences  # noqa: PLC0415
    from speechexp.inference.model import load_model  # noqa: PLC0415
    from speechexp.runs.run import Run  # noqa: PLC0415

    if cfg.format not in FORMATS:
        raise SpeechexpError(f"format={cfg.format} is not one of {sorted(FORMATS)}; pass format=onnx or "
                             "format=torchscript.")
    model = load_model(cfg.ckpt_path, device="cpu")
    with Run.for_evaluation(cfg) as run:
        path = Path(cfg.output) if cfg.output else Path(run.dir) / f"model{FORMATS[cfg.format]}"
        export_model(model, path, cfg.format)
        run.extra.update(exported=str(path), format=str(cfg.format))
        log.info("Exported %s to %s", model.kind, path)
        if cfg.verify:
            _, meta = graph_of(model)
            differences = max_differences(model, path, example_inputs(meta, batch=2, seconds=2.0, seed=cfg.seed))
            run.metrics.update({f"export/max_abs_diff/{name}": value for name, value in differences.items()})
            worst = max(differences, key=differences.get)
            log.info("Largest difference from PyTorch: %.3g (%s)", differences[worst], worst)
            if differences[worst] > cfg.tolerance:
                raise SpeechexpError(f"The exported model's {worst} differ from PyTorch's by {differences[worst]:.3g}, "
                                     f"more than tolerance={cfg.tolerance}; report it, or pass verify=false to keep "
                                     f"{path} anyway.")
    return run.metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
@entry_point
def hydra_main(cfg: DictConfig) -> None:
    export(cfg)


@entry_point
def main() -> None:
    """``speechexp-export``: the command line as every entry point takes it, then Hydra."""
    prepare_command_line()
    hydra_main()


if __name__ == "__main__":
    main()
