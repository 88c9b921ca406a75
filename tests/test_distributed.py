"""Distributed (DDP) runs on CPU: ``trainer=ddp_sim`` spawns two gloo processes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.conftest import cli_env, run_cli

SMALL_CORPUS = ("dataset.preparer.num_speakers=30", "dataset.preparer.utterances_per_speaker=10",
                "dataset.preparer.num_sentences=120")


def results(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def fast_dev_run_on_two_processes(tmp_path, *overrides: str):
    run_dir = tmp_path / "run"
    done = run_cli("train", "trainer=ddp_sim", "debug=fdr", f"hydra.run.dir={run_dir}",
                   f"paths.data_dir={tmp_path / 'data'}", "trainer.enable_progress_bar=false", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    assert results(run_dir)["status"] == "completed"
    assert not list(run_dir.glob("*rank*"))
    return run_dir


def test_separation_fast_dev_run_on_two_processes_exports_once(tmp_path):
    run_dir = fast_dev_run_on_two_processes(tmp_path, "dataset.preparer.n_examples=20")
    exported = rows(run_dir / "test_metrics.csv")
    assert [r["id"] for r in exported] == ["00018", "00019"]  # both ranks' examples, one file, once
    assert sorted(p.name for p in (run_dir / "separated").glob("*.wav")) == [
        "00018_source1.wav", "00018_source2.wav", "00019_source1.wav", "00019_source2.wav"]


@pytest.mark.slow
def test_asr_emotion_trains_on_two_processes_and_tests_as_one_process_does(tmp_path):
    """Trained on two processes (one checkpoint, no per-rank files), the checkpoint tested by one
    process and by two (each rank a disjoint half of the length-sorted test split, metrics
    synced) gives the same metrics and one export."""
    data, train_dir = tmp_path / "data", tmp_path / "train"
    common = (f"paths.data_dir={data}", "trainer.enable_progress_bar=false")
    trained = run_cli("train", "experiment=asr_emotion", "trainer=ddp_sim", *SMALL_CORPUS, *common,
                      f"hydra.run.dir={train_dir}", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
                      "test=false", "logger=csv")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert results(train_dir)["status"] == "completed" and not list(train_dir.rglob("*rank*"))
    ckpt = train_dir / "checkpoints" / "last.ckpt"
    metrics = {}
    for trainer in ("default", "ddp_sim"):
        out = tmp_path / trainer
        done = run_cli("evaluate", f"ckpt_path={ckpt}", f"trainer={trainer}", f"hydra.run.dir={out}", *common)
        assert done.returncode == 0, done.stderr[-3000:]
        metrics[trainer] = results(out)
        assert metrics[trainer]["status"] == "completed"
    one, two = metrics["default"], metrics["ddp_sim"]
    for key in ("test/cer", "test/wer", "test/accuracy", "test/uar", "test/loss", "test/ctc", "test/emotion_ce"):
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
    single, double = rows(tmp_path / "default" / "test_predictions.csv"), rows(tmp_path / "ddp_sim" / "test_predictions.csv")
    assert [r["path"] for r in double] == [r["path"] for r in single] and len(single) > 16
    assert [r["hypothesis"] for r in double] == [r["hypothesis"] for r in single]
    assert (tmp_path / "ddp_sim" / "figures" / "emotion_confusion.png").stat().st_size > 5_000
    assert not list((tmp_path / "ddp_sim").rglob("*rank*"))


GROUP_LEFT_AT_EXIT = """
import atexit, sys, torch.distributed as dist
from speechexp.runs.callbacks import DestroyProcessGroupAtExit
# registered first, so it runs last: is the group still there once every other exit handler ran?
atexit.register(lambda: print("initialized at exit:", dist.is_initialized(), flush=True))
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
if sys.argv[2] == "callback":
    DestroyProcessGroupAtExit().setup(None, None, "fit")
    DestroyProcessGroupAtExit().setup(None, None, "test")  # a second trainer in the same process
"""


@pytest.mark.parametrize("way", ["callback", "none"])
def test_every_trainer_destroys_its_gloo_group_at_exit(tmp_path, way):
    """A gloo process left to the interpreter's shutdown sometimes aborts (SIGABRT; see
    scripts/bench_gloo_exit.py): the callback every trainer carries destroys the group first."""
    from speechexp.runs.build import build_trainer
    from speechexp.runs.callbacks import DestroyProcessGroupAtExit

    trainer = build_trainer(OmegaConf.create({"_target_": "pytorch_lightning.Trainer", "max_epochs": 1}), [], [],
                            enable_progress_bar=False)
    assert sum(isinstance(c, DestroyProcessGroupAtExit) for c in trainer.callbacks) == 1
    done = subprocess.run([sys.executable, "-c", GROUP_LEFT_AT_EXIT, str(tmp_path / "store"), way],
                          capture_output=True, text=True, timeout=120, env=cli_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"initialized at exit: {way == 'none'}"
