"""Run dirs as units of work: skip, resume after SIGKILL/SIGTERM, start afresh; checkpoints as
data; non-finite losses; reproducibility; what a run dir records."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from speechexp.runs.checkpoints import load_checkpoint
from speechexp.errors import SpeechexpError
from speechexp.runs.plan import SUPERSEDED_DIR
from speechexp.train import train
from tests.cli_fork import ForkedProcess
from tests.conftest import REPO, cli_env, compose_config, run_cli, start_cli
from tests.test_cli import assert_one_line_error

TINY = ("dataset.preparer.n_examples=20", "trainer.enable_progress_bar=false")


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def logged_rows(run_dir: Path) -> list[dict]:
    """Every row of the run's CSV log."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def epoch_rows(run_dir: Path) -> list[dict]:
    """Rows of the CSV log that hold an epoch's training loss (one per trained epoch)."""
    return [r for r in logged_rows(run_dir) if r.get("train/loss")]


def test_rerun_skips_a_completed_run_and_other_configs_start_afresh(compose_train, tmp_path):
    run_dir = tmp_path / "run"
    first = train(compose_train(*TINY, "trainer.max_epochs=2", "logger=csv"))
    stamp = (run_dir / "results.json").stat().st_mtime_ns
    again = train(compose_train(*TINY, "trainer.max_epochs=2", "logger=csv", "trainer.enable_model_summary=false"))
    assert again == pytest.approx(first)  # cosmetic change: the same unit of work, skipped
    assert (run_dir / "results.json").stat().st_mtime_ns == stamp and not (run_dir / SUPERSEDED_DIR).exists()
    train(compose_train(*TINY, "trainer.max_epochs=2", "optimizer.lr=0.002", "logger=csv"))  # another experiment
    kept = list((run_dir / SUPERSEDED_DIR).glob("*/results.json"))  # the old files kept aside
    assert len(kept) == 1 and json.loads(kept[0].read_text())["val/si_snr"] == pytest.approx(first["val/si_snr"])
    assert [int(r["epoch"]) for r in epoch_rows(run_dir)] == [0, 1]
    train(compose_train(*TINY, "trainer.max_epochs=2", "optimizer.lr=0.002", "logger=csv", "resume=false"))
    assert len(list((run_dir / SUPERSEDED_DIR).glob("*/results.json"))) == 2
    assert results(run_dir)["status"] == "completed" and "resumed_from" not in results(run_dir)


def start_training(run_dir: Path, data: Path, *extra: str) -> ForkedProcess:
    return start_cli("train", f"hydra.run.dir={run_dir}", f"paths.data_dir={data}", *TINY, "trainer.max_epochs=6",
                     "logger=many", *extra)


def wait_for_epoch_line(run_dir: Path, epoch: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        log = run_dir / "train.log"
        if log.is_file() and f"epoch {epoch}/6 " in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"no 'epoch {epoch}/6' line in time: {process.communicate()[1][-2000:]}")


def wait_for_epoch_rows(run_dir: Path, count: int, process: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until ``metrics.csv`` holds ``count`` epochs' training rows. A kill just after the
    row lands is the moment the log runs ahead of ``last.ckpt`` (saved at the next epoch's
    start), the case a resume must not log twice."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if (run_dir / "csv" / "metrics.csv").is_file() and len(epoch_rows(run_dir)) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"metrics.csv has no {count} epoch rows in time: {process.communicate()[1][-2000:]}")


def assert_resumed_to_the_end(run_dir: Path, data: Path) -> dict:
    done = run_cli("train", f"hydra.run.dir={run_dir}", f"paths.data_dir={data}", *TINY,
                   "trainer.max_epochs=6", "logger=many")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Resuming from" in done.stdout
    final = results(run_dir)
    assert final["status"] == "completed" and final["resumed_from"].endswith(".ckpt")
    epochs = [int(r["epoch"]) for r in epoch_rows(run_dir)]
    assert epochs == list(range(6)), epochs  # every epoch logged once, none twice, none lost
    steps = [int(r["step"]) for r in epoch_rows(run_dir)]
    assert steps == sorted(steps) and torch.load(run_dir / "checkpoints" / "last.ckpt",
                                                 weights_only=True)["global_step"] == 6
    # one W&B run for the run dir: the resumed process logged into the same run id
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    offline = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(name.endswith(run_id) for name in offline), (offline, run_id)
    return final


def test_sigkill_then_the_same_command_resumes_from_last_ckpt(tmp_path):
    run_dir, data = tmp_path / "run", tmp_path / "data"
    process = start_training(run_dir, data)
    wait_for_epoch_line(run_dir, 3, process)
    wait_for_epoch_rows(run_dir, 3, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "results.json").exists()  # killed without a word
    assert_resumed_to_the_end(run_dir, data)


def tensorboard_scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every ``tag`` event TensorBoard shows for the run, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return sorted((event.step, event.value) for event in events.Scalars(tag))


def test_rows_logged_after_the_checkpoint_are_dropped_and_logged_once_on_resume(compose_train, tmp_path):
    """A SIGKILL after an epoch's rows reached metrics.csv and before last.ckpt moved past
    that epoch: here made certain by putting back the checkpoint of epoch 2 after epoch 4.
    The CSV log drops those rows; TensorBoard hides those events."""
    run_dir, args = tmp_path / "run", (*TINY, "logger=[csv,tensorboard]")
    train(compose_train(*args, "trainer.max_epochs=2"))
    last = run_dir / "checkpoints" / "last.ckpt"
    saved_at_epoch_2 = last.read_bytes()
    assert torch.load(last, weights_only=True)["global_step"] == 2
    train(compose_train(*args, "trainer.max_epochs=4"))
    first_pass = epoch_rows(run_dir)
    first_pass_events = tensorboard_scalars(run_dir, "train/loss")
    assert [step for step, _ in first_pass_events] == [0, 1, 2, 3]
    assert [int(r["epoch"]) for r in first_pass] == [0, 1, 2, 3]
    assert len([r for r in logged_rows(run_dir) if r.get("test/si_snr")]) == 2  # the tests after 2 and 4 epochs
    last.write_bytes(saved_at_epoch_2)
    (run_dir / "results.json").unlink()  # interrupted: no results
    train(compose_train(*args, "trainer.max_epochs=4"))
    assert results(run_dir)["status"] == "completed" and results(run_dir)["resumed_from"] == str(last)
    rows = epoch_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # epochs 2 and 3 dropped, then trained again
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["train/loss"]) for r in rows] == pytest.approx([float(r["train/loss"]) for r in first_pass])
    assert len([r for r in logged_rows(run_dir) if r.get("test/si_snr")]) == 3  # tests are kept
    events = tensorboard_scalars(run_dir, "train/loss")  # without the purge mark: steps 2 and 3 twice
    assert [step for step, _ in events] == [0, 1, 2, 3]
    assert [value for _, value in events] == pytest.approx([value for _, value in first_pass_events])
    assert [step for step, _ in tensorboard_scalars(run_dir, "test/si_snr")] == [2, 4, 4]  # and so are tests


def test_weight_average_is_what_the_checkpoint_holds_the_test_reads_and_a_resume_continues(compose_train, tmp_path):
    """callbacks=weight_average: the checkpoints hold the average (and the raw weights), the
    run's test reads the average as speechexp-eval does, and 2 + 2 epochs end where 4 do."""
    from speechexp.evaluate import evaluate

    args = (*TINY, "logger=csv", "callbacks=weight_average", "callbacks.weight_average.decay=0.5")
    train(compose_train(*args, "trainer.max_epochs=4", run_name="straight"))
    straight = results(tmp_path / "straight")
    best = torch.load(straight["best_checkpoint"], weights_only=True)
    averaged, raw = best["state_dict"], best["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[name], raw[name]) for name in averaged)

    eval_dir = tmp_path / "eval"
    metrics = evaluate(compose_config("eval", [f"ckpt_path={straight['best_checkpoint']}", f"paths.data_dir={tmp_path / 'data'}",
                                               "~logger", "trainer.enable_progress_bar=false"], eval_dir))
    assert metrics["test/si_snr"] == pytest.approx(straight["test/si_snr"], abs=1e-4)  # the raw weights read otherwise

    train(compose_train(*args, "trainer.max_epochs=2"))
    resumed = train(compose_train(*args, "trainer.max_epochs=4"))
    assert resumed["test/si_snr"] == pytest.approx(straight["test/si_snr"], abs=1e-4)
    ends = [torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True) for run in ("run", "straight")]
    for key in ("state_dict", "current_model_state"):
        for name, value in ends[0][key].items():
            torch.testing.assert_close(value, ends[1][key][name], msg=f"{key}/{name}")


def test_a_w_and_b_service_inherited_from_the_parent_is_not_used(tmp_path):
    """A notebook or test runner that opened W&B leaves ``WANDB_SERVICE`` in the environment of
    the commands it starts; a run that logged into that service would find its own run id "in
    use" when resumed after a kill. Here the inherited address is dead: the run must not use it."""
    env = {**cli_env(), "WANDB_SERVICE": "3-1-unix-/nonexistent/wandb/socket"}
    done = subprocess.run([sys.executable, "-m", "speechexp.train", f"hydra.run.dir={tmp_path / 'run'}",
                           f"paths.data_dir={tmp_path / 'data'}", *TINY, "trainer.max_epochs=1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert results(tmp_path / "run")["status"] == "completed"
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_last_ckpt_records_interrupted_and_resumes(stop, tmp_path):
    run_dir, data = tmp_path / "run", tmp_path / "data"
    process = start_training(run_dir, data)
    wait_for_epoch_line(run_dir, 2, process)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Interrupted: training stopped and saved checkpoints/last.ckpt" in stderr
    assert results(run_dir)["status"] == "interrupted"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert_resumed_to_the_end(run_dir, data)


def test_progress_bar_off_prints_one_line_per_epoch(tmp_path):
    done = run_cli("train", f"hydra.run.dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}", *TINY,
                   "trainer.max_epochs=3", "logger=csv")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if " - epoch " in line]
    assert len(lines) == 3, done.stdout
    for epoch, line in enumerate(lines, start=1):
        assert f"epoch {epoch}/3 step {epoch}" in line and "train/loss " in line and " items/s" in line
        assert "val/si_snr " in line and "(best " in line and line.rstrip().endswith("items/s")


def test_non_finite_ctc_loss_stops_with_the_step_and_the_cause(compose_train, tmp_path):
    """A 25 ms hop and stride 4 leave 10 frames/s, fewer than the characters spoken: CTC is infinite."""
    cfg = compose_train("experiment=asr_emotion", "model.stride=4", "dataset.datamodule.hop_length=400",
                        "loss.zero_infinity=false", "logger=csv",
                        "dataset.preparer.num_speakers=30", "dataset.preparer.utterances_per_speaker=10",
                        "dataset.preparer.num_sentences=120", "trainer.enable_progress_bar=false")
    with pytest.raises(SpeechexpError) as info:
        train(cfg)
    message = str(info.value)
    assert message.startswith("The training loss became inf at epoch 0, step 0; ")
    assert "CTC inputs shorter than their targets" in message and "loss.zero_infinity=true" in message
    recorded = results(tmp_path / "run")
    assert recorded["status"] == "failed" and recorded["error"] == message


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_unrun(tmp_path):
    marker, ckpt = tmp_path / "PWNED", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "speechexp_config": {"task": {"name": "separation"}},
                "payload": _RunsCode(marker)}, ckpt)
    with pytest.raises(SpeechexpError, match="holds objects other than tensors and plain data"):
        load_checkpoint(ckpt)
    done = run_cli("evaluate", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert_one_line_error(done, "evil.ckpt holds objects other than tensors and plain data", "refused")
    assert not marker.exists()


def test_a_file_that_is_no_checkpoint_and_a_folder_are_named_for_what_they_are(tmp_path):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    (tmp_path / "lines.ckpt").write_text("hello world\nline two\n")  # the old pickle format reads a KeyError
    (tmp_path / "nothing.ckpt").write_bytes(b"")
    torch.save({"state_dict": {}, "speechexp_config": {}}, tmp_path / "real.ckpt")
    (tmp_path / "cut.ckpt").write_bytes((tmp_path / "real.ckpt").read_bytes()[:200])
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}, "speechexp_config": {}}, tmp_path / "run" / "checkpoints" / "last.ckpt")
    (tmp_path / "empty").mkdir()
    for path, expected in [
            ("notes.ckpt", "notes.ckpt is corrupt or not a PyTorch checkpoint (it does not unpickle); pass another"),
            ("lines.ckpt", "lines.ckpt is corrupt or not a PyTorch checkpoint (it does not unpickle); pass another"),
            ("nothing.ckpt", "nothing.ckpt is corrupt or not a PyTorch checkpoint (it does not unpickle); pass another"),
            ("cut.ckpt", "cut.ckpt is corrupt or unreadable ("),
            ("run", f"run is a folder; pass ckpt_path=PATH to a .ckpt file in it (e.g. {tmp_path}/run/checkpoints/"
                    "last.ckpt)."),
            ("empty", "empty is a folder; pass ckpt_path=PATH to a .ckpt file written by speechexp-train")]:
        with pytest.raises(SpeechexpError) as refused:
            load_checkpoint(tmp_path / path)
        assert expected in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
        assert "could run code" not in str(refused.value)


def test_a_checkpoint_of_another_task_is_refused_by_name(compose_train, tmp_path):
    train(compose_train("debug=limit", "trainer.max_epochs=1", *TINY, "logger=csv", run_name="sep"))
    ckpt = tmp_path / "sep" / "checkpoints" / "last.ckpt"
    cfg = compose_train("experiment=asr_emotion", "train=false", f"ckpt_path={ckpt}", run_name="asr")
    with pytest.raises(SpeechexpError) as info:
        train(cfg)
    assert str(info.value).startswith(
        f"Checkpoint {ckpt} was trained for task=separation model=LSTMSeparator, but this run is "
        "task=asr_emotion model=MultitaskSpeechModel;")
    # refused before the run: no run record, no corpus synthesised
    assert list((tmp_path / "asr").iterdir()) == [] and not list((tmp_path / "data").glob("emotional_speech-*"))
    missing = compose_train("train=false", f"ckpt_path={tmp_path / 'nope.ckpt'}", run_name="missing")
    with pytest.raises(SpeechexpError, match=f"Checkpoint {tmp_path / 'nope.ckpt'} does not exist"):
        train(missing)


def test_a_dataset_its_preparer_refuses_is_refused_before_the_run_writes_anything(compose_train, tmp_path):
    """Settings only the preparer can judge (two sinusoids cannot fill three splits) are
    judged before the run: no run record, no data folder."""
    with pytest.raises(SpeechexpError, match="n_examples=2 leaves the val split empty"):
        train(compose_train("dataset.preparer.n_examples=2"))
    assert list((tmp_path / "run").iterdir()) == [] and not (tmp_path / "data").exists()


def test_eval_without_ckpt_path_and_a_model_of_another_task_are_one_sentence(tmp_path):
    # in its default run dir (outputs/eval/<time>): the refusal takes away the folders Hydra made
    no_ckpt = run_cli("evaluate", cwd=tmp_path)
    assert_one_line_error(no_ckpt, "speechexp-eval needs a checkpoint: pass ckpt_path=PATH")
    assert list(tmp_path.iterdir()) == []
    earlier = tmp_path / "earlier"  # a run dir that holds an earlier run keeps it
    earlier.mkdir()
    (earlier / "results.json").write_text('{"status": "completed"}')
    refused_again = run_cli("evaluate", f"hydra.run.dir={earlier}")
    assert_one_line_error(refused_again, "speechexp-eval needs a checkpoint")
    assert (earlier / "results.json").read_text() == '{"status": "completed"}'
    assert (earlier / "evaluate.log").is_file()
    wrong_model = run_cli("train", "model=multitask", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(wrong_model, "model=multitask cannot be used with experiment=separation (task=separation)",
                          "use experiment=asr_emotion")
    assert not (tmp_path / "run").exists()


def test_a_plain_command_after_a_hydra_job_in_the_same_process_still_refuses_in_one_line(capsys):
    """A Hydra job earlier in the process (a notebook, a sweep) leaves Hydra's config behind
    without a run dir: a command's refusal must not read that config for a run dir to tidy."""
    from speechexp.runs.entry import entry_point

    compose_config("train", [])  # Hydra's config is set, its run dir never filled in

    @entry_point
    def command() -> None:
        raise SpeechexpError("nothing to plot; pass a WAV file.")

    with pytest.raises(SystemExit) as stopped:
        command()
    assert stopped.value.code == 1 and capsys.readouterr().err == "Error: nothing to plot; pass a WAV file.\n"


@pytest.mark.parametrize("experiment, overrides", [
    ("separation", ("trainer.max_epochs=2", *TINY)),
    ("asr_emotion", ("debug=limit", "trainer.max_epochs=2", "dataset.preparer.num_speakers=30",
                     "dataset.preparer.utterances_per_speaker=10", "dataset.preparer.num_sentences=120")),
])
def test_deterministic_runs_repeat_their_metrics_exactly(experiment, overrides, compose_train, tmp_path):
    runs = []
    for name in ("first", "second"):
        cfg = compose_train(f"experiment={experiment}", *overrides, "trainer.deterministic=true", "seed=3",
                            "logger=csv", "trainer.enable_progress_bar=false", run_name=name)
        train(cfg)
        runs.append({k: v for k, v in results(tmp_path / name).items()
                     if k.startswith(("train/", "val/", "test/")) and not k.endswith(("_s", "seconds"))})
    assert runs[0] == runs[1] and len(runs[0]) >= 8


def test_run_dir_records_command_versions_and_commit(compose_train, tmp_path):
    train(compose_train("debug=fdr", *TINY, "logger=csv"))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["packages"]["torch"].startswith("2.") and record["packages"]["speechexp"]
    assert record["command"] and len(record["run_id"]) == 12
    if (REPO / ".git").exists():
        assert len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_a_run_resumed_mid_epoch_still_prints_its_epoch_line(tmp_path, caplog):
    """Lightning skips on_train_epoch_start for an epoch resumed mid-way (a checkpoint saved on
    SIGTERM): the epoch line must still come, timed from the resume (it once raised AttributeError)."""
    import logging  # noqa: PLC0415

    import pytorch_lightning as pl  # noqa: PLC0415
    from torch.utils.data import DataLoader  # noqa: PLC0415

    from speechexp.runs.callbacks import EpochSummary  # noqa: PLC0415

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch).pow(2).mean()
            self.log("train/loss", loss, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = DataLoader(torch.randn(8, 2), batch_size=2)  # 4 batches per epoch
    options = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
               "enable_model_summary": False}
    class SaveMidEpoch(pl.Callback):  # what GracefulInterrupt writes on SIGTERM
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 1:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")

    pl.Trainer(max_epochs=1, callbacks=[SaveMidEpoch()], **options).fit(Tiny(), data)
    caplog.set_level(logging.INFO, logger="speechexp")
    resumed = pl.Trainer(max_epochs=2, callbacks=[EpochSummary("train/loss")], **options)
    resumed.fit(Tiny(), data, ckpt_path=tmp_path / "mid.ckpt")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert lines and lines[-1].startswith("epoch 2/2 step ") and lines[-1].endswith(" items/s"), lines
