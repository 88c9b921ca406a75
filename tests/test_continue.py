"""Continuing a run with a longer training budget: same run dir, same logs, every scheduler."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from speechexp.errors import SpeechexpError
from speechexp.runs.plan import RUN_FILE, SUPERSEDED_DIR
from speechexp.sweeps.comparison import find_jobs
from speechexp.tasks.schedules import OneCycleSchedule, WarmupCosineSchedule
from speechexp.train import train

FAST = ("trainer.enable_progress_bar=false", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2")
TASKS = {
    "separation": ("dataset.preparer.n_examples=20", *FAST),
    "asr_emotion": ("experiment=asr_emotion", "dataset.preparer.num_speakers=12",
                    "dataset.preparer.utterances_per_speaker=5", "dataset.preparer.num_sentences=40", *FAST),
}


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def trained_epochs(run_dir: Path) -> list[int]:
    """The epoch of every row of the CSV log that holds an epoch's validation score."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        monitor = "val/si_snr" if "si_snr" in handle.readline() else "val/loss"
        handle.seek(0)
        return [int(r["epoch"]) for r in csv.DictReader(handle) if r.get(monitor)]


@pytest.mark.parametrize("task", TASKS)
def test_a_longer_budget_continues_the_run_in_its_own_dir(task, compose_train, tmp_path):
    run_dir, args = tmp_path / "run", (*TASKS[task], "logger=many")
    train(compose_train(*args, "trainer.max_epochs=1"))
    run_id = json.loads((run_dir / RUN_FILE).read_text())["run_id"]
    assert trained_epochs(run_dir) == [0]

    train(compose_train(*args, "trainer.max_epochs=2"))  # the same command with a larger budget
    assert trained_epochs(run_dir) == [0, 1]
    first = results(run_dir)
    assert first["status"] == "completed" and first["continued_from_epoch"] == 1
    assert first["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")

    own = run_dir / "checkpoints" / "last.ckpt"  # ckpt_path of the run's own checkpoint: the same request
    train(compose_train(*args, "trainer.max_epochs=3", f"ckpt_path={own}"))
    assert trained_epochs(run_dir) == [0, 1, 2]
    assert results(run_dir)["continued_from_epoch"] == 2 and "test/loss" in results(run_dir)
    assert not (run_dir / SUPERSEDED_DIR).exists()
    assert json.loads((run_dir / RUN_FILE).read_text())["run_id"] == run_id
    wandb_runs = {p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")}
    assert wandb_runs == {run_id}  # one W&B run, resumed twice
    # the monitored metric's best so far carries across the continuations
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["task"]
    monitor, best_of = saved["monitor"], max if saved["mode"] == "max" else min
    values = [float(r[monitor]) for r in rows if r.get(monitor)]
    bests = [float(r[f"{monitor}_best"]) for r in rows if r.get(f"{monitor}_best")]
    running = [best_of(values[: i + 1]) for i in range(len(values))]
    assert bests == pytest.approx(running), (bests, values)
    # a budget below what was trained is refused before anything is written: the results stay
    before = (run_dir / "results.json").read_bytes()
    with pytest.raises(SpeechexpError, match=r"already trained 3 epochs, more than trainer.max_epochs=2; pass "
                                             r"trainer.max_epochs above 3 to train it longer, resume=false"):
        train(compose_train(*args, "trainer.max_epochs=2"))
    assert (run_dir / "results.json").read_bytes() == before
    # Hydra rewrites .hydra/overrides.yaml for that refused command; the run's own record is kept
    (run_dir / ".hydra").mkdir(exist_ok=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["trainer.max_epochs=2"]))
    recorded = find_jobs([run_dir])[0].overrides
    assert "trainer.max_epochs=3" in recorded and f"ckpt_path={own}" in recorded


@pytest.mark.parametrize("scheduler", ["onecycle", "onecycle_step", "warmup_cosine", "plateau", None])
@pytest.mark.parametrize("task", TASKS)
def test_every_scheduler_continues_from_one_to_two_epochs(task, scheduler, compose_train, tmp_path):
    choice = f"scheduler={scheduler}" if scheduler else "~scheduler"
    args = (*TASKS[task], choice, "logger=csv")
    train(compose_train(*args, "trainer.max_epochs=1"))
    train(compose_train(*args, "trainer.max_epochs=2"))
    run_dir = tmp_path / "run"
    assert results(run_dir)["status"] == "completed" and trained_epochs(run_dir) == [0, 1]
    assert math.isfinite(results(run_dir)["test/loss"])
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)  # plain data only
    assert len(checkpoint["lr_schedulers"]) == (1 if scheduler else 0)


def test_last_ckpt_is_the_newest_epoch_even_when_it_is_not_the_best(compose_train, tmp_path):
    # lr=0: no epoch after the first improves, so the best checkpoint is never saved again
    train(compose_train(*TASKS["separation"], "logger=csv", "trainer.max_epochs=3", "optimizer.lr=0"))
    checkpoints = tmp_path / "run" / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert last["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 3
    assert [p.name for p in checkpoints.glob("best-*.ckpt")] == ["best-epoch000.ckpt"]


def test_another_experiment_setting_still_starts_afresh_and_keeps_the_old_files(compose_train, tmp_path):
    run_dir, args = tmp_path / "run", (*TASKS["separation"], "logger=csv")
    train(compose_train(*args, "trainer.max_epochs=1"))
    own = run_dir / "checkpoints" / "last.ckpt"
    # a changed learning rate is another experiment; the checkpoint it starts from is read
    # from where the earlier files were moved, not lost
    train(compose_train(*args, "trainer.max_epochs=2", "optimizer.lr=0.002", f"ckpt_path={own}"))
    kept = list((run_dir / SUPERSEDED_DIR).glob("*/checkpoints/last.ckpt"))
    assert len(kept) == 1 and results(run_dir)["status"] == "completed"
    assert "continued_from_epoch" not in results(run_dir) and trained_epochs(run_dir) == [1]


def test_a_checkpoint_of_another_schedule_or_size_is_refused_in_one_sentence(compose_train, tmp_path):
    args = (*TASKS["separation"], "logger=csv", "trainer.max_epochs=1")
    train(compose_train(*args, "scheduler=plateau", run_name="plateau"))
    ckpt = tmp_path / "plateau" / "checkpoints" / "last.ckpt"
    with pytest.raises(SpeechexpError, match=r"trained with scheduler=plateau, .* continue with scheduler=plateau"):
        train(compose_train(*args, "scheduler=warmup_cosine", f"ckpt_path={ckpt}", run_name="other"))
    # weights of another size: named by the settings that differ, not PyTorch's list of tensors
    with pytest.raises(SpeechexpError, match=r"holds weights of another size than this run's model \(model.units=\d+ "
                                             r"in the checkpoint, 16 here\); fine-tune with the checkpoint's model"):
        train(compose_train(*args, "scheduler=plateau", "model.units=16", "model.dropout=0.2", f"ckpt_path={ckpt}",
                            run_name="smaller"))
    # both before the run dir is planned: nothing is written, no failed record
    assert not any((tmp_path / "other").iterdir()) and not any((tmp_path / "smaller").iterdir())


def test_an_asr_checkpoint_of_other_sizes_is_refused_before_the_run_reads_its_data(compose_train, tmp_path):
    args = (*TASKS["asr_emotion"], "logger=csv", "trainer.max_epochs=1")
    train(compose_train(*args, run_name="trained"))
    ckpt = tmp_path / "trained" / "checkpoints" / "last.ckpt"
    shutil.rmtree(tmp_path / "data")  # a refusal before the data is read prepares none
    # a model setting, and a data setting that sizes the model (the log-mel bands it reads)
    for name, change, said in [("units", "model.units=16", "model.units=128 in the checkpoint, 16 here"),
                               ("mels", "dataset.datamodule.n_mels=40",
                                "dataset.datamodule.n_mels=80 in the checkpoint, 40 here")]:
        with pytest.raises(SpeechexpError, match=re.escape(f"holds weights of another size than this run's model "
                                                           f"({said}); fine-tune with the checkpoint's model")):
            train(compose_train(*args, change, f"ckpt_path={ckpt}", run_name=name))
        assert not any((tmp_path / name).iterdir())
    # a dataset listing another number of emotions than the checkpoint's head was trained on
    with pytest.raises(SpeechexpError, match=re.escape(
            "was trained on 5 emotions (neutral, happy, sad, angry, fearful), but this run's "
            "dataset.datamodule.emotions lists 2 (happy, sad); continue with its emotions "
            "(dataset.datamodule.emotions=[neutral,happy,sad,angry,fearful]), or train without ckpt_path.")):
        train(compose_train(*args, "dataset.datamodule.emotions=[happy,sad]", f"ckpt_path={ckpt}", run_name="two"))
    assert not any((tmp_path / "two").iterdir())
    assert not (tmp_path / "data").exists()


def stepped(schedule, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        schedule.optimizer.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    return rates


@pytest.mark.parametrize("make", [
    lambda opt, total: OneCycleSchedule(opt, max_lr=0.1, total_steps=total),
    lambda opt, total: WarmupCosineSchedule(opt, total_steps=total),
])
def test_a_schedule_restored_for_a_longer_total_decays_from_where_it_was_to_its_floor(make):
    def optimizer():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)

    first = make(optimizer(), 10)
    stepped(first, 6)  # stopped after 6 of 10 steps
    state = first.state_dict()
    resumed = make(optimizer(), 10)  # the same budget: exactly the original schedule
    resumed.load_state_dict(state)
    uninterrupted = make(optimizer(), 10)
    assert stepped(resumed, 4) == pytest.approx(stepped(uninterrupted, 10)[6:])

    longer = make(optimizer(), 30)  # a longer budget: a continuation phase over steps 7..30
    longer.load_state_dict(state)
    rates = stepped(longer, 24)  # would be "Tried to step 11 times" for torch's OneCycleLR
    start, floor = state["_last_lr"][0], longer.floor_lrs()[0]
    assert rates[0] == pytest.approx(floor + (start - floor) * 0.5 * (1 + math.cos(math.pi / 24)))
    assert all(a >= b for a, b in zip(rates, rates[1:])) and rates[-1] == pytest.approx(floor)
    again = make(optimizer(), 30)  # the phase is part of the state: a resumed continuation goes on
    again.load_state_dict(longer.state_dict())
    assert again.continuation == longer.continuation


def test_a_key_a_newer_version_adds_as_null_keeps_the_run_the_same_experiment(tmp_path):
    """A run dir written before a config key existed (e.g. ``decoder: null``) is continued,
    not started afresh, by the same command with a longer budget; a real change still is."""
    import yaml

    from speechexp.runs.plan import CONFIG_FILE, plan_run

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    old = {"trainer": {"max_epochs": 15}, "model": {"hidden": 8}, "ckpt_path": None}
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(old))
    longer = {**old, "trainer": {"max_epochs": 18}, "decoder": None}
    assert plan_run(run_dir, longer).action == "continue"
    changed = {**longer, "decoder": {"_target_": "speechexp.inference.decoders.BeamSearchDecoder"}}
    assert plan_run(run_dir, changed).action == "start"
    assert (run_dir / SUPERSEDED_DIR).is_dir()
