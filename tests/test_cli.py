"""The console entry points as a user runs them: exit codes, messages, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli, run_cli_each


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_train_with_default_logger_writes_offline_wandb_and_results(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("train", f"hydra.run.dir={run_dir}", f"paths.data_dir={tmp_path / 'data'}",
                     "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                     "trainer.limit_test_batches=1", "dataset.preparer.n_examples=12")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed" and "test/si_snr" in results
    assert list((run_dir / "wandb").glob("offline-run-*")), "wandb did not run offline"
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert len(list((tmp_path / "data").glob("sinusoids-*/metadata.csv"))) == 1


def test_refusals_are_one_sentence_and_leave_nothing(tmp_path):
    """An incompatible loss, a batch of no utterances, a misspelled key and a missing
    checkpoint: one sentence each (Hydra's own for the key), no data prepared, no run dir.
    One interpreter runs the four, as the shell would one after another."""
    calls = [("train", ["loss=ctc_custom", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data"]),
             ("train", ["dataset.datamodule.batch_size=0", f"hydra.run.dir={tmp_path}/run",
                        f"paths.data_dir={tmp_path}/data"]),
             ("train", ["model.unitz=8", f"hydra.run.dir={tmp_path}/run"]),
             ("evaluate", [f"ckpt_path={tmp_path}/missing.ckpt", f"hydra.run.dir={tmp_path}/eval"])]
    loss, batch, key, ckpt = run_cli_each(calls)
    assert_one_line_error(loss, "loss=ctc_custom cannot be used with experiment=separation (task=separation)",
                          "use experiment=asr_emotion, or choose one of loss=l1, loss=si_snr")
    assert_one_line_error(batch, "dataset.datamodule.batch_size=0 is out of range", "greater than 0")
    assert key.returncode != 0 and "Key 'unitz' not in 'LSTMSeparatorConfig'" in key.stderr
    assert_one_line_error(ckpt, "missing.ckpt does not exist", "ckpt_path")
    assert list(tmp_path.iterdir()) == []  # no data prepared or half-written, no run dir


def test_a_refusal_keeps_the_users_own_empty_folders(tmp_path):
    """A run dir (or a folder above it) the user made before the command stays, emptied of
    what Hydra wrote; the folders the command made go."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "above").mkdir()
    calls = [("train", ["dataset.datamodule.batch_size=0", f"hydra.run.dir={tmp_path}/mine"]),
             ("train", ["dataset.datamodule.batch_size=0", f"hydra.run.dir={tmp_path}/above/made/run"])]
    for result in run_cli_each(calls):
        assert_one_line_error(result, "dataset.datamodule.batch_size=0 is out of range")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["above", "mine"]
    assert list((tmp_path / "mine").iterdir()) == [] and list((tmp_path / "above").iterdir()) == []


def test_corrupt_wav_stops_with_the_file_name(tmp_path):
    data = tmp_path / "data"
    prepared = run_cli("prepare", f"paths.data_dir={data}", "dataset.preparer.n_examples=10")
    assert prepared.returncode == 0, prepared.stderr
    folder = data / prepared.stdout.strip().splitlines()[-1].split("/")[-1]
    assert (folder / "metadata.csv").is_file()
    (folder / "mixture" / "00008.wav").write_bytes(b"not a wav at all")
    result = run_cli("train", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={data}",
                     "dataset.preparer.n_examples=10", "debug=fdr")
    assert_one_line_error(result, "00008.wav is corrupt or unreadable")
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "failed"


def test_prepare_reuses_the_folder(tmp_path):
    args = (f"paths.data_dir={tmp_path}", "dataset.preparer.n_examples=4")
    first, second = run_cli_each([("prepare", list(args)), ("prepare", list(args))])
    assert first.returncode == second.returncode == 0
    folder = first.stdout.strip().splitlines()[-1]
    assert folder == second.stdout.strip().splitlines()[-1]
    assert "Reusing prepared dataset" in second.stdout
    assert [str(p) for p in tmp_path.iterdir()] == [folder]


def test_plot_writes_spectrogram_figures_and_rejects_missing_paths(tmp_path):
    wav_dir = tmp_path / "wavs"
    wav_dir.mkdir()
    t = np.arange(4000) / 8000
    for name, freq in (("low", 300), ("high", 2000)):
        sf.write(wav_dir / f"{name}.wav", 0.3 * np.sin(2 * np.pi * freq * t), 8000)
    out = tmp_path / "plots"
    result = run_cli("plot", str(wav_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["wavs_high.png", "wavs_low.png"]
    assert all((out / p).stat().st_size > 10_000 for p in pngs)
    missing = run_cli("plot", str(tmp_path / "nope.wav"), "--out", str(out))
    assert_one_line_error(missing, "nope.wav does not exist")


def test_plot_refuses_a_count_or_window_of_none(capsys):
    from speechexp.plot import parse_args

    for option, value in (("--limit", "0"), ("--limit", "-2"), ("--n-fft", "0"), ("--hop-length", "x")):
        with pytest.raises(SystemExit) as stopped:
            parse_args(["wavs", option, value])
        assert stopped.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"speechexp-plot: error: argument {option}: '{value}' is not a whole number above 0")
    assert parse_args(["wavs", "--limit", "3"]).limit == 3
