"""Ship a trained model: ``speechexp-export ckpt_path=CKPT format=onnx|torchscript``.

Writes ``model.onnx`` (or ``model.pt``) into the run directory (or ``output=PATH``), a
graph from the raw waveform at the model's sample rate with dynamic batch and time
axes, with ``<file>.json`` naming its inputs, outputs, labels and sample rate (see
:mod:`speechexp.inference.export`). With ``verify=true`` (the default) the written file
is run on noise (onnxruntime, or ``torch.jit.load``) and compared with PyTorch: the
largest absolute differences go to ``results.json``, and one above ``tolerance`` is an
error, and the file is not written (an earlier one at ``output`` is kept).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from speechexp.config import CONF_DIR, prepare_command_line  # importing registers schemas and resolvers
from speechexp.config.ranges import check_ranges
from speechexp.errors import SpeechexpError
from speechexp.runs.entry import entry_point

log = logging.getLogger("speechexp.export")


def export(cfg: DictConfig) -> dict[str, float]:
    """Export ``cfg.ckpt_path`` as ``cfg.format``; return the verification's differences."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SpeechexpError("speechexp-export needs a checkpoint: pass ckpt_path=PATH to a .ckpt file written by "
                             "speechexp-train (e.g. <run dir>/checkpoints/last.ckpt).")
    check_ranges(cfg)
    # torch loads here, not at import: `speechexp-export --help` stays fast
    from speechexp.inference.export import (  # noqa: PLC0415
        FORMATS, example_inputs, export_model, graph_of, max_differences, sidecar)
    from speechexp.inference.model import load_model  # noqa: PLC0415
    from speechexp.runs.run import Run  # noqa: PLC0415

    if cfg.format not in FORMATS:
        raise SpeechexpError(f"format={cfg.format} is not one of {sorted(FORMATS)}; pass format=onnx or "
                             "format=torchscript.")
    model = load_model(cfg.ckpt_path, device="cpu")
    name = f"model{FORMATS[cfg.format]}"
    chosen = output_path(cfg.output, name) if cfg.output else None  # a folder it cannot make: nothing written
    with Run.for_evaluation(cfg) as run:
        path = chosen or Path(run.dir) / name
        # written and checked in a hidden folder beside it, then moved into place: a file that
        # fails its check never replaces anything (an earlier export at output=PATH included)
        with staging_folder(path.parent) as staging:
            # the format's own suffix while checked: the check picks onnxruntime by it
            staged = export_model(model, Path(staging) / name, cfg.format)
            if cfg.verify:
                _, meta = graph_of(model)
                differences = max_differences(model, staged, example_inputs(meta, batch=2, seconds=2.0, seed=cfg.seed))
                run.metrics.update({f"export/max_abs_diff/{output}": value for output, value in differences.items()})
                worst = max(differences, key=differences.get)
                log.info("Largest difference from PyTorch: %.3g (%s)", differences[worst], worst)
                if differences[worst] > cfg.tolerance:
                    raise SpeechexpError(f"The exported model's {worst} differ from PyTorch's by "
                                         f"{differences[worst]:.3g}, more than tolerance={cfg.tolerance}, so "
                                         f"{path} was not written; report it, or pass verify=false to write it "
                                         "unchecked.")
            os.replace(staged, path)
            os.replace(sidecar(staged), sidecar(path))
        run.extra.update(exported=str(path), format=str(cfg.format))
        log.info("Exported %s to %s", model.kind, path)
    return run.metrics


STAGING_PREFIX = ".export-"


def staging_folder(parent: Path) -> tempfile.TemporaryDirectory:
    """A hidden folder in ``parent`` named for this process (``.export-<pid>-*``) to write and
    check the file in. Those of exports that were killed before they could remove theirs
    (SIGKILL) are removed first: their process is gone; another export's, running, is kept."""
    for stale in parent.glob(f"{STAGING_PREFIX}*-*"):
        owner = stale.name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not process_running(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=parent)


def process_running(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def output_path(output: str, name: str) -> Path:
    """The file ``output=`` names (a folder, existing or ending in ``/``, holds ``name``), its
    folder made; one sentence when it cannot be."""
    path = Path(output).expanduser()
    if path.is_dir() or str(output).endswith(("/", os.sep)):
        path = path / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpeechexpError(f"output={output} cannot be written ({exc.strerror}: {exc.filename}); pass output=PATH "
                             "in a folder you can write.") from None
    return path


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
