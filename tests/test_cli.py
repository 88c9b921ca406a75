"""The console entry points as a user runs them: exit codes, messages, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli


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


def test_incompatible_loss_is_one_sentence_with_choices(tmp_path):
    result = run_cli("train", "loss=ctc_custom", f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data")
    assert_one_line_error(result, "loss=ctc_custom cannot be used with experiment=separation (task=separation)",
                          "use experiment=asr_emotion, or choose one of loss=l1, loss=si_snr")
    assert not (tmp_path / "data").exists()  # nothing was prepared or half-written


def test_a_batch_of_no_utterances_is_one_sentence_before_anything_is_written(tmp_path):
    result = run_cli("train", "dataset.datamodule.batch_size=0", f"hydra.run.dir={tmp_path}/run",
                     f"paths.data_dir={tmp_path}/data")
    assert_one_line_error(result, "dataset.datamodule.batch_size=0 is out of range", "greater than 0")
    assert list(tmp_path.iterdir()) == []  # no data prepared, no run dir


def test_misspelled_key_fails_at_composition(tmp_path):
    result = run_cli("train", "model.unitz=8", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode != 0
    assert "Key 'unitz' not in 'LSTMSeparatorConfig'" in result.stderr
    assert not (tmp_path / "run").exists()


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
    first, second = run_cli("prepare", *args), run_cli("prepare", *args)
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


def test_eval_of_a_missing_checkpoint_is_one_sentence(tmp_path):
    result = run_cli("evaluate", f"ckpt_path={tmp_path}/missing.ckpt", f"hydra.run.dir={tmp_path}/eval")
    assert_one_line_error(result, "missing.ckpt does not exist", "ckpt_path")


def test_plot_refuses_a_count_or_window_of_none(capsys):
    from speechexp.plot import parse_args

    for option, value in (("--limit", "0"), ("--limit", "-2"), ("--n-fft", "0"), ("--hop-length", "x")):
        with pytest.raises(SystemExit) as stopped:
            parse_args(["wavs", option, value])
        assert stopped.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"speechexp-plot: error: argument {option}: '{value}' is not a whole number above 0")
    assert parse_args(["wavs", "--limit", "3"]).limit == 3
