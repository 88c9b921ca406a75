"""The package installed from a wheel (not editable) works from any folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, cli_env, run_cli_each

SOURCES = ("pyproject.toml", "README.md", "speechexp", "conf")


# what the optional extras install (top-level import names and their metadata), kept out of the
# fresh venv so that it holds only the core dependencies
EXTRAS = {
    "optuna": ("optuna", "hydra_optuna_sweeper"),
    "joblib": ("hydra_joblib_launcher",),
    "slurm": ("submitit", "hydra_submitit_launcher"),
    "tensorboard": ("tensorboard", "tensorboard_data_server"),
    "lm": ("flashlight", "flashlight_text"),
}
EXTRA_NAMES = {name for names in EXTRAS.values() for name in names}
# a small synthetic corpus: the default one (3800 utterances) would spend a minute on synthesis
TINY_CORPUS = ("dataset.preparer.num_speakers=10", "dataset.preparer.utterances_per_speaker=5",
               "dataset.preparer.num_sentences=30")


def installed_env(path: Path | None = None) -> dict:
    """The installed package's environment: no index to install from, nothing of the checkout
    on ``PYTHONPATH`` (only ``path``, where given)."""
    env = cli_env(PIP_NO_INDEX="1")
    env.pop("PYTHONPATH", None)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return env


def run(command: list[str], cwd: Path, timeout: int = 600, check: bool = True,
        path: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=installed_env(path), capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def is_extra(entry: Path) -> bool:
    """Whether a site-packages entry (package, module or .dist-info) belongs to an extra."""
    name = entry.name.split("-")[0].removesuffix(".py").lower()
    return name in EXTRA_NAMES or name == "hydra_plugins"  # every Hydra plugin we use is an extra


def site_view(folder: Path, keep) -> Path:
    """A folder of symlinks to this environment's site-packages entries for which ``keep`` holds."""
    site = Path(sysconfig.get_paths()["purelib"])
    folder.mkdir()
    for entry in site.iterdir():
        if keep(entry) and not entry.name.endswith(".pth") and not entry.name.startswith(("speechexp", "__")):
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv holding only the speechexp wheel and its core dependencies: a .pth
    file lends it this environment's packages except the optional extras' (no network needed)."""
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
    core = site_view(root / "core", lambda entry: not is_extra(entry))
    (site / "speechexp_test_deps.pth").write_text(f"{core}\n")
    return venv


@pytest.fixture(scope="module")
def optuna_extra(installed) -> Path:
    """A folder that, on PYTHONPATH, adds what ``speechexp[optuna]`` installs."""
    view = site_view(installed.parent / "optuna", lambda entry: entry.name.split("-")[0].lower() in EXTRAS["optuna"])
    plugins = view / "hydra_plugins"  # a namespace package: only the Optuna sweeper in it
    plugins.mkdir()
    (plugins / "hydra_optuna_sweeper").symlink_to(Path(sysconfig.get_paths()["purelib"]) / "hydra_plugins"
                                                  / "hydra_optuna_sweeper")
    return view


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


def test_core_install_runs_both_studies_and_names_the_extra_an_option_needs(installed, tmp_path):
    python = str(installed / "bin" / "python")
    missing = run([python, "-c", "import importlib.util as u; print([m for m in ('optuna', 'tensorboard', "
                   "'submitit', 'hydra_plugins', 'flashlight') if u.find_spec(m)])"], tmp_path)
    assert missing.stdout.strip() == "[]"  # the extras really are absent
    train = str(installed / "bin" / "speechexp-train")
    run([train, "experiment=asr_emotion", *TINY_CORPUS, "debug=fdr", "logger=csv", "hydra.run.dir=outputs/asr"],
        tmp_path)
    assert json.loads((tmp_path / "outputs" / "asr" / "results.json").read_text())["status"] == "completed"
    needs = {"hparams_search=separation_optuna": "optuna", "hydra/launcher=joblib": "joblib",
             "hydra/launcher=slurm": "slurm", "logger=tensorboard": "tensorboard",
             "decoder=beam_lm": "lm", "decoder=beam_english": "lm"}
    # each option refused in one process: the check runs before Hydra, and a process per option
    # would spend its time importing torch and Lightning, not refusing
    calls = [("train", [option, "debug=fdr", "hydra.run.dir=outputs/refused"]) for option in needs]
    refused = dict(zip(needs, run_cli_each(calls, cwd=tmp_path, python=python, env=installed_env())))
    for option, extra in needs.items():
        code, stderr = refused[option].returncode, refused[option].stderr
        assert code not in (0, None), option
        lines = stderr.strip().splitlines()
        assert lines[-1].startswith(f"Error: {option} "), stderr
        assert f"needs the optional '{extra}' dependencies" in lines[-1], stderr
        assert f"pip install 'speechexp[{extra}]'" in lines[-1] and "Traceback" not in stderr
    assert not (tmp_path / "outputs" / "refused").exists()
    # the console script exits non-zero with the same sentence
    console = run([train, "logger=tensorboard", "debug=fdr", "hydra.run.dir=outputs/refused"], tmp_path, check=False)
    assert console.returncode == refused["logger=tensorboard"].returncode
    assert console.stderr.strip().splitlines()[-1] == refused["logger=tensorboard"].stderr.strip().splitlines()[-1]


def test_the_optuna_extra_runs_the_optuna_preset(installed, optuna_extra, tmp_path):
    sweep = tmp_path / "study"
    run([str(installed / "bin" / "speechexp-train"), "hparams_search=separation_optuna", "hydra.sweeper.n_trials=2",
         "debug=fdr", "logger=csv", f"hydra.sweep.dir={sweep}"], tmp_path, path=optuna_extra)
    jobs = [p for p in sweep.iterdir() if (p / "results.json").is_file()]
    assert len(jobs) == 2
    assert all(json.loads((p / "results.json").read_text())["status"] == "completed" for p in jobs)


def test_version_and_metadata_come_from_the_installed_package(installed, tmp_path):
    shown = run([str(installed / "bin" / "python"), "-c",
                 "import json, speechexp; from importlib.metadata import metadata, requires; m = metadata('speechexp'); "
                 "print(json.dumps({'version': speechexp.__version__, 'meta': m['Version'], "
                 "'license': m['License-Expression'], 'classifiers': m.get_all('Classifier'), "
                 "'extras': m.get_all('Provides-Extra'), 'requires': requires('speechexp')}))"], tmp_path)
    info = json.loads(shown.stdout)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert info["version"] == info["meta"] and f'version = "{info["version"]}"' in pyproject
    assert info["license"] == "MIT" and any("Science/Research" in c for c in info["classifiers"])
    assert {"optuna", "joblib", "slurm", "tensorboard", "all", "dev"} <= set(info["extras"])
    core = [r for r in info["requires"] if "extra ==" not in r]
    assert not any(r.startswith(("optuna", "hydra-optuna", "tensorboard", "hydra-submitit", "sqlalchemy")) for r in core)
