"""Every config composes, every ``_target_`` exists and accepts its keys, bad configs fail."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from speechexp.config import CONF_DIR
from speechexp.config.resolvers import wandb_offline
from speechexp.data import tts
from speechexp.errors import SpeechexpError
from speechexp.config.compatibility import check_composed as check_compatibility
from tests.conftest import compose_config

CONF = Path(CONF_DIR)
TASK_EXPERIMENTS = ("separation", "asr_emotion")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def target_nodes(node):
    """Yield every config node with a ``_target_`` (depth first)."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield node
        for key in node:
            if not str(key).startswith("_") and OmegaConf.is_config(node._get_node(key)):
                yield from target_nodes(node[key])


def assert_keys_fit_target(node: DictConfig) -> None:
    """The target exists and every key of the node is one of its parameters."""
    target = get_object(node._target_)
    signature = inspect.signature(target)
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    keys = {k for k in node if not str(k).startswith("_")}
    unknown = keys - set(params)
    assert not unknown, f"{node._target_} does not take {sorted(unknown)}"


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes_and_targets_fit(experiment, tmp_path):
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path)
    OmegaConf.resolve(cfg.task)
    nodes = list(target_nodes(cfg))
    assert {"task", "model", "loss", "optimizer", "trainer"} <= {n._get_full_key(None).split(".")[0] for n in nodes}
    for node in nodes:
        assert_keys_fit_target(node)
    if "root" in cfg.dataset:  # a corpus experiment needs its folder before it runs: here one file named like it
        example = re.search(r"e\.g\. ([^ )]+\.wav)", get_object(cfg.dataset.preparer._target_).pattern).group(1)
        (tmp_path / "corpus").mkdir()
        (tmp_path / "corpus" / example).write_bytes(b"")  # the check before a run reads names only
        cfg = compose_config("train", [f"experiment={experiment}", f"dataset.root={tmp_path / 'corpus'}"], tmp_path)
    missing = sorted(set(cfg.dataset.get("preparer", {}).get("voices") or []) - set(tts.installed_voices()))
    if missing:  # a machine without `make voices`: the preset is refused in one sentence naming it
        with pytest.raises(SpeechexpError, match=r"^Voice \S+ needs the \w+ engine, which is not installed here; "
                                                 r"run `make voices"):
            check_compatibility(cfg)
    else:
        check_compatibility(cfg)  # every preset is a valid combination


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "optimizer", "scheduler", "debug",
                                   "hparams_search", "model", "task"])
def test_every_group_option_composes(group, tmp_path):
    """Each option composes with an experiment whose task fits it (the two studies' own first),
    and its targets take its keys."""
    experiments = ["separation", "asr_emotion", *(e for e in options("experiment") if e not in TASK_EXPERIMENTS)]
    for option in options(group):
        for experiment in experiments:
            try:
                cfg = compose_config("train", [f"experiment={experiment}", f"{group}={option}"], tmp_path)
                check_compatibility(cfg)  # e.g. task=separation under experiment=asr_emotion is refused
            except (ConfigCompositionException, SpeechexpError):
                continue
            for node in target_nodes(cfg):
                assert_keys_fit_target(node)
            break
        else:
            raise AssertionError(f"{group}={option} composes with no experiment")


@pytest.mark.parametrize("dataset", options("dataset"))
def test_every_dataset_composes_for_prepare(dataset, tmp_path):
    cfg = compose_config("prepare", [f"dataset={dataset}"], tmp_path)
    assert "preparer" in cfg.dataset and "datamodule" in cfg.dataset
    for node in (cfg.dataset.preparer, cfg.dataset.datamodule):
        assert_keys_fit_target(node)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_prepare_takes_an_experiment_and_prepares_what_training_would(experiment, tmp_path):
    """``speechexp-prepare experiment=NAME [overrides]`` composes the dataset training composes
    (the same resolved config, so the same fingerprinted folder)."""
    extra = ["dataset.preparer.num_speakers=7"] if experiment == "asr_emotion_voices" else []
    prepared = compose_config("prepare", [f"experiment={experiment}", *extra], tmp_path)
    trained = compose_config("train", [f"experiment={experiment}", *extra], tmp_path)
    as_prepared = OmegaConf.to_container(prepared.dataset, resolve=True)
    assert as_prepared == OmegaConf.to_container(trained.dataset, resolve=True)
    if extra:
        assert as_prepared["preparer"]["num_speakers"] == 7


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_instantiates(loss, tmp_path):
    from hydra.utils import instantiate

    cfg = compose_config("train", [f"loss={loss}"], tmp_path)
    assert callable(instantiate(cfg.loss))


def test_experiment_presets_set_the_documented_values(tmp_path):
    seed = compose_config("train", ["experiment=minor2_q1"], tmp_path)
    assert (seed.model.units, seed.optimizer.lr, seed.trainer.max_epochs) == (8, 3e-4, 10)
    assert seed.model.front_end == "time" and seed.loss._target_.endswith("L1Loss")
    default = compose_config("train", [], tmp_path)
    assert default.model.front_end == "stft" and default.task.name == "separation"
    assert default.dataset.preparer.n_examples == 100 and default.dataset.preparer.fs == 8000


@pytest.mark.parametrize("override, message", [
    ("model.unitz=8", "Key 'unitz' not in 'LSTMSeparatorConfig'"),
    ("model.units=abc", "could not be converted to Integer"),
    ("model.front_end=mel", "expected one of [stft, time]"),
    ("optimizer.lr=fast", "could not be converted to Float"),
    ("dataset.preparer.fs=8k", "could not be converted to Integer"),
    ("model=transformer", "Could not find 'model/transformer'"),
    ("experiment=asr_emotion dataset.preparer.num_speakers=many", "could not be converted to Integer"),
    ("experiment=asr_emotion dataset.datamodule.n_melz=40", "Key 'n_melz' not in 'EmotionSpeechDataModuleConfig'"),
    ("experiment=asr_emotion model.unitz=64", "Key 'unitz' not in 'MultitaskSpeechModelConfig'"),
    ("dataset=ravdess dataset.preparer.label_map=calm", "Cannot assign str to Dict[str, Any]"),
])
def test_bad_overrides_fail_at_composition(override, message, tmp_path):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("train", override.split(), tmp_path)
    text = str(info.value) + str(info.value.__cause__)
    assert message in text


def test_incompatible_combination_names_the_valid_choices(tmp_path):
    cfg = compose_config("train", ["loss=ctc_custom"], tmp_path)
    with pytest.raises(SpeechexpError) as info:
        check_compatibility(cfg)
    assert str(info.value) == ("loss=ctc_custom cannot be used with experiment=separation (task=separation); "
                               "use experiment=asr_emotion, or choose one of loss=l1, loss=si_snr.")


@pytest.mark.parametrize("env, offline", [
    ({}, True),
    ({"WANDB_API_KEY": "k"}, False),
    ({"WANDB_MODE": "online"}, False),
    ({"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, True),
])
def test_wandb_is_offline_unless_a_key_or_online_mode_is_set(env, offline, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert wandb_offline() is offline
    cfg = compose_config("train", ["logger=wandb"], tmp_path)
    assert cfg.logger.wandb.offline is offline


def test_slurm_launcher_preset_composes_with_requeue_signal(tmp_path):
    from hydra import compose, initialize_config_dir  # noqa: PLC0415
    from hydra.core.global_hydra import GlobalHydra  # noqa: PLC0415

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.additional_parameters.signal == "USR1@120" and launcher.gpus_per_node == 1


@pytest.mark.parametrize("experiment, override, named", [
    ("separation", "dataset.datamodule.batch_size=0", "dataset.datamodule.batch_size=0 is out of range: batch_size "
                                                      "must be greater than 0"),
    ("separation", "model.n_fft=0", "model.n_fft=0 is out of range"),
    ("separation", "optimizer.lr=-0.001", "optimizer.lr=-0.001 is out of range: lr must be 0 or more"),
    ("asr_emotion", "dataset.datamodule.num_workers=-1", "num_workers must be 0 or more"),
    ("asr_emotion", "model.dropout=1.0", "model.dropout=1.0 is out of range: dropout must be at least 0 and below 1"),
    ("asr_emotion", "dataset.datamodule.hop_length=0", "dataset.datamodule.hop_length=0 is out of range"),
    # ran silently before: a negative clip norm flips the gradients, shares above 1 mean "all"
    ("separation", "trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1 is out of range: gradient_clip_val "
                                                   "must be 0 or more"),
    ("separation", "model.frame_size=0", "model.frame_size=0 is out of range"),
    ("asr_emotion", "task.module.speaker_mean_dropout=1.5", "speaker_mean_dropout must be a share from 0 to 1"),
    ("asr_emotion", "dataset.preparer.emotion_strength=-1", "emotion_strength must be 0 or more"),
    # ended in a traceback before: from the data preparation, Lightning's loop, the optimizer or the schedule
    ("asr_emotion", "dataset.preparer.val_fraction=1.5", "val_fraction must be a share from 0 up to"),
    ("asr_emotion", "dataset.preparer.val_fraction=0.5 dataset.preparer.test_fraction=0.6",
     "val_fraction=0.5 and test_fraction=0.6 leave no training data"),
    ("separation", "trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0 is out of range"),
    ("separation", "optimizer.eps=-1", "optimizer=adam refuses its settings: Invalid epsilon value: -1.0; change "
                                       r"the optimizer\.\* value it names"),
    ("asr_emotion", "scheduler=onecycle_step scheduler.pct_start=1.5", "scheduler=onecycle_step refuses its settings"),
    ("separation", "threads=-3", r"threads=-3 is out of range: threads must be 0 or more \(0 or null: torch's default"),
    ("asr_emotion", "dataset.preparer.num_speakers=2", "dataset.preparer needs num_speakers >= 3, num_sentences >= 3"),
])
def test_a_number_no_run_can_use_is_refused_before_the_run(tmp_path, experiment, override, named):
    cfg = compose_config("train", [f"experiment={experiment}", *override.split()], tmp_path / "run")
    with pytest.raises(SpeechexpError, match=named) as refusal:
        check_compatibility(cfg)
    assert "\n" not in str(refusal.value)
    check_compatibility(compose_config("train", [f"experiment={experiment}"], tmp_path / "run"))  # defaults fit


def test_number_ranges_read_every_node_by_key_name_and_pass_null():
    from speechexp.config.ranges import check_ranges, numbers

    cfg = OmegaConf.create({"hydra": {"lr": -1}, "model": {"units": 8, "on": True, "parts": [{"n_fft": 64}]},
                            "optimizer": {"lr": "${model.units}", "weight_decay": None}, "ckpt_path": "???"})
    assert list(numbers(cfg)) == [("model.units", "units", 8), ("model.parts[0].n_fft", "n_fft", 64),
                                  ("optimizer.lr", "lr", 8)]
    check_ranges(cfg)  # Hydra's own node is not read, null is "not set"
    cfg.model.parts[0].n_fft = 0  # a user's own option, nested in a list, by its key's name
    with pytest.raises(SpeechexpError, match=r"model.parts\[0\].n_fft=0 is out of range"):
        check_ranges(cfg)
