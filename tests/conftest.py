"""Shared test helpers: compose configs in-process and run the CLIs as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from speechexp.config import CONF_DIR

REPO = Path(__file__).resolve().parent.parent

# `make test` runs one pytest-xdist worker per core: each worker, and every command it starts,
# computes on one torch thread, so that the workers never oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def compose_config(config_name: str, overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as the CLI would, with HydraConfig set.

    ``run_dir`` stands in for Hydra's run directory (``paths.output_dir``).
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.paths.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # the task function sees no hydra node (HydraConfig holds it)
    return cfg


@pytest.fixture
def compose_train(tmp_path):
    """Compose a training config writing into tmp_path (data in tmp_path/data)."""

    def _compose(*overrides: str, run_name: str = "run") -> DictConfig:
        run_dir = tmp_path / run_name
        run_dir.mkdir(exist_ok=True)
        return compose_config("train", [f"paths.data_dir={tmp_path / 'data'}", *overrides], run_dir)

    return _compose


def cli_env(**extra: str) -> dict:
    """The environment for a command under test: W&B offline, and no ``WANDB_SERVICE``: once a
    test has opened W&B in this pytest process, its service address is in ``os.environ``, and a
    child would log into that service, where a killed child's run id stays "in use"."""
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", **extra}
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_SERVICE", None)
    return env


def run_cli(module: str, *args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m speechexp.<module> args`` and capture its output."""
    full_env = cli_env(**(env or {}))
    return subprocess.run([sys.executable, "-m", f"speechexp.{module}", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=full_env)
