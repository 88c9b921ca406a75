"""A GPU this machine does not have: refused in one sentence before anything is written."""

from __future__ import annotations

import re

import pytest
import torch
from omegaconf import OmegaConf

from speechexp.config import machine
from speechexp.config.machine import check_device, check_trainer_devices, requested_gpus
from speechexp.errors import SpeechexpError
from tests.conftest import run_cli_each
from tests.test_cli import assert_one_line_error


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: trainer=gpu runs here")
def test_a_gpu_trainer_on_a_machine_without_one_is_refused_by_every_command(tmp_path):
    (tmp_path / "audio").mkdir()
    calls = [("train", ["trainer=gpu", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"]),
             ("train", ["experiment=asr_emotion", "trainer=ddp", f"hydra.run.dir={tmp_path}/run",
                        f"paths.data_dir={tmp_path}/data"]),
             ("evaluate", [f"ckpt_path={tmp_path}/some.ckpt", "trainer=gpu", f"hydra.run.dir={tmp_path}/eval"]),
             ("infer", [f"ckpt_path={tmp_path}/some.ckpt", f"input={tmp_path}/audio", "trainer.accelerator=cuda",
                        f"hydra.run.dir={tmp_path}/infer"])]
    train_gpu, train_ddp, evaluate, infer = run_cli_each(calls)
    why = f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None else "sees no CUDA device"
    for result, accelerator in ((train_gpu, "gpu"), (train_ddp, "gpu"), (evaluate, "gpu"), (infer, "cuda")):
        assert_one_line_error(result, f"This run asks for a GPU (trainer.accelerator={accelerator}), and ", why,
                              "run with trainer=cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]  # no data prepared, no run dir


@pytest.mark.parametrize("devices,needed", [(1, 1), (4, 4), ("3", 3), ([0, 3], 4), ("0,2", 3),
                                            (OmegaConf.create([1]), 2), (-1, None), ("-1", None), ("auto", None)])
def test_the_gpus_a_devices_setting_needs(devices, needed):
    assert requested_gpus(devices) == needed


def test_more_gpus_than_the_machine_has_are_refused_naming_how_many_it_has(monkeypatch):
    monkeypatch.setattr(machine, "visible_gpus", lambda: 2)
    for fits in (1, 2, -1, "auto", "0,1", [1]):
        check_trainer_devices(OmegaConf.create({"accelerator": "gpu", "devices": fits}))
    for asked, needs in ((4, 4), ([0, 2], 3)):
        with pytest.raises(SpeechexpError, match=re.escape(f"trainer.devices={asked} needs {needs} GPUs, and torch sees "
                                                           "2 here; pass trainer.devices=2 or fewer (trainer.devices=-1: "
                                                           "all of them).")):
            check_trainer_devices({"accelerator": "cuda", "devices": asked})
    check_trainer_devices({"accelerator": "cpu", "devices": 8})  # CPU processes: not GPUs
    check_device("cuda:1")
    with pytest.raises(SpeechexpError, match=r"^device='cuda:2' is not here: torch sees 2 GPUs \(cuda:0 to cuda:1\); "
                                             r"pass one of those, or device='cpu'\.$"):
        check_device("cuda:2")


def test_a_device_the_api_cannot_use_is_one_sentence(monkeypatch):
    check_device("cpu")
    check_device(torch.device("cpu"))
    with pytest.raises(SpeechexpError, match=r"^device='gpu' is not a torch device; pass 'cpu', 'cuda' or 'cuda:N'\.$"):
        check_device("gpu")
    monkeypatch.setattr(machine, "visible_gpus", lambda: 0)
    with pytest.raises(SpeechexpError, match=r"^device='cuda' needs a GPU, and torch .*; pass device='cpu'\.$"):
        check_device("cuda")
    with pytest.raises(SpeechexpError, match=r"^This run asks for a GPU \(trainer.accelerator=gpu\)"):
        check_trainer_devices({"accelerator": "gpu", "devices": 1})


def test_trainer_settings_lightning_refuses_are_refused_before_anything_is_written(tmp_path):
    calls = [("train", ["trainer.precision=bf17", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"]),
             ("train", ["experiment=asr_emotion", "trainer.max_epochs=-2", f"hydra.run.dir={tmp_path}/run",
                        f"paths.data_dir={tmp_path}/data"]),
             ("evaluate", [f"ckpt_path={tmp_path}/some.ckpt", "trainer.devices=0", f"hydra.run.dir={tmp_path}/eval"])]
    precision, budget, devices = run_cli_each(calls)
    fix = "; fix that trainer.* setting, or pick a preset: trainer=cpu, gpu, ddp or ddp_sim."
    assert_one_line_error(precision, "trainer.precision=bf17 is not a precision Lightning takes; pass trainer.precision="
                                     "32-true or 16-mixed or bf16-mixed (also 64-true, 16-true, bf16-true).")
    assert_one_line_error(budget, "(`max_epochs` must be a non-negative integer or -1. You passed in -2)", fix)
    assert_one_line_error(devices, "(`Trainer(devices=0)` value is not a valid input using cpu accelerator)", fix)
    assert list(tmp_path.iterdir()) == []  # no data prepared, no run dir


def test_the_trial_trainer_keeps_lightnings_loggers_as_they_were():
    import logging

    from speechexp.config.machine import check_trainer_builds

    logger = logging.getLogger("pytorch_lightning")
    before = logger.level
    settings = OmegaConf.create({"_target_": "pytorch_lightning.Trainer", "accelerator": "cpu", "devices": 1})
    check_trainer_builds(settings)
    with pytest.raises(SpeechexpError, match=r"^Lightning refuses this run's trainer settings \(You selected an invalid "
                                             r"strategy name: `strategy='nonsense'`"):
        check_trainer_builds(OmegaConf.merge(settings, {"strategy": "nonsense"}))
    assert logger.level == before
