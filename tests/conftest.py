"""Shared test helpers: compose configs in-process and run the CLIs as subprocesses."""

from __future__ import annotations

import json
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
from tests.cli_fork import ForkedProcess, run_forked

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
    """Run ``python -m speechexp.<module> args`` and capture its output: in a process forked from
    one that has imported the commands (tests/cli_fork.py), or in a fresh interpreter where ``env``
    sets what an interpreter reads as it starts."""
    return run_python(f"speechexp.{module}", *args, cwd=cwd, env=env, timeout=timeout)


def run_script(script: str, *args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python scripts/NAME.py args`` (a path relative to ``cwd``, default the repository) as
    :func:`run_cli` runs a command."""
    return run_python(script, *args, cwd=cwd, timeout=timeout)


def run_python(target: str, *args: str, cwd: Path | None = None, env: dict | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m target args`` (a module) or ``python target args`` (a ``.py`` path)."""
    if not env:
        return run_forked(target, list(args), cwd or REPO, cli_env(), timeout)
    command = [sys.executable, target] if target.endswith(".py") else [sys.executable, "-m", target]
    return subprocess.run([*command, *args], cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                          env=cli_env(**env))


def start_cli(module: str, *args: str, cwd: Path | None = None) -> ForkedProcess:
    """Start ``python -m speechexp.<module> args`` and return it at once, to signal or wait for
    (a :class:`subprocess.Popen` with both streams piped, as text)."""
    return ForkedProcess(f"speechexp.{module}", list(args), cwd or REPO, cli_env())


# One interpreter runs the commands one after another, as Hydra's own sweeps run jobs: each
# command starts with Hydra's state cleared, its output is captured apart, and an uncaught
# exception reads as it would from the shell.
EACH_IN_ONE_PROCESS = """
import contextlib, importlib, io, json, sys, traceback
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
done = []
for module, args in json.loads(sys.argv[1]):
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None
    sys.argv = [f"speechexp-{module}", *args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            importlib.import_module(f"speechexp.{module}").main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except Exception:
            traceback.print_exc()
            code = 1
    done.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(done))
"""


def run_cli_each(calls: list[tuple[str, list[str]]], cwd: Path | None = None, python: str = sys.executable,
                 env: dict | None = None, timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """Run each ``(module, args)`` as ``speechexp.<module>.main()`` would from the shell, all in
    one interpreter: for short commands (a composed config, a refusal, a tiny run), where
    starting torch and Lightning anew for each would cost more than the command.

    ``env`` replaces the environment (default :func:`cli_env`)."""
    if python == sys.executable and env is None:  # forked, as run_cli runs a command
        child = run_forked("-c", [EACH_IN_ONE_PROCESS, json.dumps(calls)], cwd or REPO, cli_env(), timeout)
    else:
        child = subprocess.run([python, "-c", EACH_IN_ONE_PROCESS, json.dumps(calls)], cwd=cwd or REPO,
                               capture_output=True, text=True, timeout=timeout, env=env or cli_env())
    assert child.returncode == 0, child.stderr[-3000:]
    return [subprocess.CompletedProcess([module, *args], code, out, err)
            for (module, args), (code, out, err) in zip(calls, json.loads(child.stdout.splitlines()[-1]))]
