"""Every option of every config group, one at a time, on both tasks: it runs, or it is refused
in one sentence before anything runs. The options are discovered from ``conf/``, so an
option is tested the day it is added."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from speechexp.config import CONF_DIR
from speechexp.config.compatibility import check_command_line, check_composed
from speechexp.errors import IncompatibleOptions, SpeechexpError
from speechexp.train import train
from tests.conftest import compose_config, run_cli, run_cli_each

CONF = Path(CONF_DIR)
GROUPS = ("callbacks", "debug", "logger", "loss", "model", "optimizer", "scheduler", "trainer", "experiment",
          "recipe", "ablation", "hparams_search", "dataset", "decoder", "dataset/voices")
TASK_EXPERIMENTS = {"separation": "separation", "asr_emotion": "asr_emotion"}
# small data for the datasets that are generated here (the corpora need a folder of the user's)
TINY_DATA = {
    # one test example drawn against its truth (the data's and the curves' figures are drawn as always)
    "sinusoids": ("dataset.preparer.n_examples=20", "task.module.n_figures=1"),
    "emotional_speech": ("dataset.preparer.num_speakers=10", "dataset.preparer.utterances_per_speaker=5",
                         "dataset.preparer.num_sentences=30", "dataset.preparer.speakers_per_voice=1"),
}
# one epoch of a few batches: checkpoints, loggers, schedules and the test stage all run
FAST = ("debug=limit", "trainer.max_epochs=1", "trainer.enable_progress_bar=false")
# composed and pre-flighted only: sweeps are tested in test_sweeps.py, the GPU trainers need a
# GPU (without one they are refused: test_machine.py), and ddp_sim (two processes) has its own test below
ADDED_GROUPS = ("ablation", "recipe")
COMPOSE_ONLY = {("hparams_search", o) for o in ("asr_emotion_ablation", "asr_emotion_grid", "separation_grid",
                                                 "separation_optuna")} | {("trainer", "gpu"), ("trainer", "ddp"),
                                                                           ("trainer", "ddp_sim")}


def default_choices(experiment: str) -> dict[str, str]:
    """The option each group gets in ``experiment`` (Hydra's runtime choices)."""
    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415

    compose_config("train", [f"experiment={experiment}"])
    return dict(HydraConfig.get().runtime.choices)


def cases() -> list[tuple[str, str, str]]:
    """``(task, group, option)`` for every option, except an experiment's own default choices
    (their run is the experiment itself, under group=experiment) ."""
    defaults = {task: default_choices(experiment) for task, experiment in TASK_EXPERIMENTS.items()}
    found = []
    for group in GROUPS:
        for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
            tasks = ["separation"] if group == "experiment" else list(TASK_EXPERIMENTS)  # experiments pick theirs
            found += [(task, group, option) for task in tasks
                      if group == "experiment" or defaults[task].get(group) != option]
    return found


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")  # shared: each tiny dataset is prepared once


@pytest.mark.parametrize("task,group,option", cases(), ids=lambda v: str(v))
def test_option_runs_or_is_refused_in_one_sentence(task, group, option, data_dir, tmp_path):
    experiment = option if group == "experiment" else TASK_EXPERIMENTS[task]
    chosen = [f"experiment={experiment}", f"paths.data_dir={data_dir}"]
    if group != "experiment":  # ablation and recipe are added to a run (+group), not chosen in place of a default
        chosen.append(f"{'+' if group in ADDED_GROUPS else ''}{group}={option}")
    fast = tuple(o for o in FAST if not (group == "debug" and o.startswith("debug=")))
    if group != "logger":
        fast += ("logger=csv",)
    try:
        check_command_line(chosen, CONF_DIR)  # what the command line refuses before composing
        composed = compose_config("train", chosen, tmp_path)
        tiny = TINY_DATA.get(composed.dataset.name, ())
        cfg = compose_config("train", [*chosen, *tiny, *fast], tmp_path / "run")
        if (group, option) in COMPOSE_ONLY:
            check_composed(cfg)
            OmegaConf.to_container(cfg, resolve=True)
            return
        train(cfg)
    except IncompatibleOptions as refusal:  # an option the task cannot use: named, with what to use
        message = str(refusal)
        assert "\n" not in message and (f"{group}={option}" in message or f"experiment={experiment}" in message)
        assert not (tmp_path / "run" / "results.json").exists()
        return
    except SpeechexpError as refusal:  # a corpus experiment without its folder, voices not installed here
        assert "\n" not in str(refusal) and ("dataset.root" in str(refusal) or "make voices" in str(refusal)), str(refusal)
        return
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "completed", results
    assert any(key.startswith("test/") for key in results), results


def test_every_logger_writes_once_with_every_stage_under_ddp_sim(tmp_path):
    """Two processes: one writer for each logger, the test stage's row in the CSV log, and the
    per-epoch line printed once."""
    run_dir = tmp_path / "run"
    result = run_cli("train", "trainer=ddp_sim", "logger=many", *FAST, *TINY_DATA["sinusoids"],
                     f"paths.data_dir={tmp_path / 'data'}", f"hydra.run.dir={run_dir}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv", newline="")))
    assert sum(bool(r.get("test/si_snr")) for r in rows) == 1 and sum(bool(r.get("val/si_snr")) for r in rows) == 1
    assert result.stdout.count("epoch 1/1 step") == 1
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) >= 1
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1


HYDRA_COMMANDS = [
    ["--cfg", "job"], ["--cfg", "job", "--resolve"], ["--cfg", "hydra"], ["--info"], ["--help"],
    ["-m", "hparams_search=separation_optuna", "--cfg", "job"],
    ["hparams_search=asr_emotion_grid", "--cfg", "job", "--resolve"],
    ["scheduler=null", "--cfg", "job"], ["logger=null", "--cfg", "job"], ["~scheduler", "--cfg", "job"],
]


@pytest.fixture(scope="module")
def hydra_commands() -> list:
    """Each of Hydra's own commands, all in one interpreter (none of them runs a job)."""
    return run_cli_each([("train", command) for command in HYDRA_COMMANDS])


@pytest.mark.parametrize("index", range(len(HYDRA_COMMANDS)), ids=lambda i: " ".join(HYDRA_COMMANDS[i]))
def test_hydra_commands_work(index, hydra_commands):
    command, result = HYDRA_COMMANDS[index], hydra_commands[index]
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    if "scheduler=null" in command or "~scheduler" in command:
        assert "\nscheduler: null\n" in result.stdout
    if "logger=null" in command:
        assert "\nlogger: null\n" in result.stdout


def test_null_for_a_group_every_run_needs_is_refused_and_ablation_null_is_nothing(tmp_path):
    refused = run_cli("train", "model=null", f"hydra.run.dir={tmp_path / 'run'}")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == ("Error: model=null: every run needs a model; choose one of "
                                      "model=lstm_separator, model=multitask.")
    assert not (tmp_path / "run").exists()
    assert run_cli("train", "ablation=null", "--cfg", "job").returncode == 0
