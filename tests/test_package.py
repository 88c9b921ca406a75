"""The package installed from a wheel (not editable) works from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

SOURCES = ("pyproject.toml", "README.md", "speechexp", "conf")


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", "PIP_NO_INDEX": "1"}
    env.pop("WANDB_API_KEY", None)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv holding only the speechexp wheel; a .pth file lends it the
    dependencies already installed here, so no network is needed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:  # build from a copy: the checkout gets no build/ or egg-info folders
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"),
         str(source)], cwd=root)
    wheel = next((root / "dist").glob("speechexp-*.whl"))
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
         "--no-index", str(wheel)], cwd=root)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "speechexp_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_wheel_ships_the_configs_and_runs_from_another_folder(installed, tmp_path):
    where = run([str(installed / "bin" / "python"), "-c",
                 "import speechexp, speechexp.config as c; print(speechexp.__file__); print(c.CONF_DIR)"], tmp_path)
    module, conf_dir = where.stdout.split()
    assert module.startswith(str(installed)) and conf_dir.startswith(str(installed))
    assert (Path(conf_dir) / "experiment" / "asr_emotion.yaml").is_file()
    prepared = run([str(installed / "bin" / "speechexp-prepare")], tmp_path)
    folder = tmp_path / prepared.stdout.strip().splitlines()[-1]  # data/<name>-<fingerprint> under the cwd
    assert (folder / "metadata.csv").is_file() and folder.parent == tmp_path / "data"
    run([str(installed / "bin" / "speechexp-train"), "debug=fdr", "hydra.run.dir=outputs/fdr"], tmp_path)
    assert json.loads((tmp_path / "outputs" / "fdr" / "results.json").read_text())["status"] == "completed"


def test_your_own_experiment_from_a_config_dir(installed, tmp_path):
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - separation\nmodel:\n  units: 12\n"
                                    "trainer:\n  max_epochs: 1\n")
    run([str(installed / "bin" / "speechexp-train"), "--config-dir", str(tmp_path / "my_conf"), "experiment=mine",
         "debug=fdr", "logger=csv", "hydra.run.dir=outputs/mine"], tmp_path)
    saved = yaml.safe_load((tmp_path / "outputs" / "mine" / "config.yaml").read_text())
    assert saved["model"]["units"] == 12 and saved["model"]["front_end"] == "stft"
