"""Where a run came from: the command line, package versions and the code's git commit."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("speechexp", "torch", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf",
            "numpy", "numba", "librosa", "soundfile", "wandb")


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (``None`` when absent)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(folder: Path) -> dict[str, str | bool] | None:
    """``{"commit", "dirty"}`` of the git work tree holding ``folder``, or ``None`` outside one."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def command_line() -> str:
    """The command as typed: ``speechexp-train a=1`` or ``python -m speechexp.train a=1``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = ["python", "-m", spec.name] if spec is not None else [Path(sys.argv[0]).name]
    return shlex.join([*program, *sys.argv[1:]])


def job_overrides() -> list[str]:
    """This Hydra job's overrides (a multirun job's own values), ``[]`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415

    return [str(o) for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else []


def describe_environment() -> dict:
    """The command line and its overrides, interpreter, platform, package versions and git
    state of the code. The overrides are the run's own record of its configuration: Hydra
    rewrites ``.hydra/overrides.yaml`` for any later command into the same dir, even one
    that is refused."""
    return {
        "command": command_line(),
        "overrides": job_overrides(),
        "cwd": str(Path.cwd()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "packages": package_versions(),
        "git": git_state(Path(__file__).resolve().parent),
    }
