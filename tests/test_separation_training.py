"""Training, testing, exports and re-evaluation of the separation study (in-process)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

from speechexp.errors import SpeechexpError
from speechexp.evaluate import evaluate
from speechexp.io import read_wav
from speechexp.train import train
from tests.conftest import compose_config


def read_results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.parametrize("experiment", ["separation", "minor2_q1"])
def test_fast_dev_run_of_each_experiment(experiment, compose_train):
    cfg = compose_train(f"experiment={experiment}", "debug=fdr", "trainer.enable_progress_bar=false")
    metrics = train(cfg)
    results = read_results(Path(cfg.paths.output_dir))
    assert results["status"] == "completed"
    for key in ("test/si_snr", "test/si_snri", "test/loss", "val/si_snr", "train/loss"):
        assert isinstance(results[key], float), key
        assert results[key] == pytest.approx(metrics[key])
    assert results["wall_seconds"] > 0 and results["run_dir"] == cfg.paths.output_dir


def mixture_si_snr(dataset_dir) -> float:
    """Mean SI-SNR of the unprocessed mixture against each source, over the test split."""
    with open(dataset_dir / "metadata.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    values = []
    for row in rows:
        mixture = torch.from_numpy(read_wav(dataset_dir / row["mixture"]))
        for column in ("source1", "source2"):
            source = torch.from_numpy(read_wav(dataset_dir / row[column]))
            values.append(scale_invariant_signal_noise_ratio(mixture, source).item())
    return float(np.mean(values))


@pytest.mark.slow
def test_separator_learns_exports_and_reevaluates(compose_train, tmp_path):
    cfg = compose_train("logger=csv", "trainer.max_epochs=15", "trainer.enable_progress_bar=false")
    run_dir = tmp_path / "run"
    train(cfg)
    results = read_results(run_dir)
    dataset_dir = Path(results["dataset_dir"])
    baseline = mixture_si_snr(dataset_dir)
    assert abs(baseline) < 3.0  # equal-power-ish sources: the mixture sits near 0 dB
    # learning: beats the unprocessed mixture by a wide margin
    assert results["test/si_snr"] >= baseline + 10.0, results
    assert results["test/si_snri"] == pytest.approx(results["test/si_snr"] - baseline, abs=0.5)

    # exports: every test example's sources as WAV, per-example metrics, figures, checkpoints
    wavs = sorted((run_dir / "separated").glob("*.wav"))
    assert len(wavs) == 2 * 10
    assert read_wav(wavs[0], 8000).shape == (8000,)
    with open(run_dir / "test_metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and {"id", "si_snr", "si_snri", "si_snr_source1", "si_snr_source2"} <= set(rows[0])
    assert np.mean([float(r["si_snr"]) for r in rows]) == pytest.approx(results["test/si_snr"], abs=0.05)
    assert len(list((run_dir / "figures").glob("test_*_separated_vs_truth.png"))) == 3
    assert len(list((run_dir / "figures").glob("data_*.png"))) == 3
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert results["best_checkpoint"].startswith(str(run_dir / "checkpoints" / "best-"))
    assert results["val/si_snr_best"] >= results["val/si_snr"] - 1e-6
    assert (run_dir / "config.yaml").is_file() and (run_dir / "csv" / "metrics.csv").is_file()
    logged = yaml.safe_load((run_dir / "csv" / "hparams.yaml").read_text())  # loggers get the config
    assert logged["model"]["units"] == 64 and logged["trainer"]["max_epochs"] == 15

    # the exported WAV is the separated source: high SI-SNR against the ground truth
    example = rows[0]["id"]
    estimate = torch.from_numpy(read_wav(run_dir / "separated" / f"{example}_source2.wav"))
    truth = torch.from_numpy(read_wav(dataset_dir / "source2" / f"{example}.wav"))
    assert scale_invariant_signal_noise_ratio(estimate, truth).item() == pytest.approx(
        float(rows[0]["si_snr_source2"]), abs=1.0)

    # the checkpoint alone rebuilds the model and reproduces the test metrics
    eval_dir = tmp_path / "eval"
    eval_cfg = compose_config("eval", [f"ckpt_path={results['best_checkpoint']}",
                                       f"paths.data_dir={tmp_path / 'data'}", "~logger",
                                       "trainer.enable_progress_bar=false"], eval_dir)
    metrics = evaluate(eval_cfg)
    assert metrics["test/si_snr"] == pytest.approx(results["test/si_snr"], abs=1e-3)
    assert read_results(eval_dir)["status"] == "completed"
    assert len(list((eval_dir / "separated").glob("*.wav"))) == 20

    # train=false with ckpt_path tests that checkpoint's weights
    test_only = compose_train("logger=csv", "train=false", f"ckpt_path={results['best_checkpoint']}",
                              "trainer.enable_progress_bar=false", run_name="test_only")
    assert train(test_only)["test/si_snr"] == pytest.approx(results["test/si_snr"], abs=1e-3)


def test_corrupt_wav_fails_with_its_name_and_a_failed_status(compose_train, tmp_path):
    from speechexp.data.sinusoids import SinusoidPreparer

    cfg = compose_train("debug=fdr", "dataset.preparer.n_examples=10")
    preparer_fields = {k: v for k, v in cfg.dataset.preparer.items() if k != "_target_"}
    folder = SinusoidPreparer(**preparer_fields).prepare(tmp_path / "data")
    broken = folder / "source2" / "00004.wav"
    broken.write_bytes(b"RIFF....garbage")
    with pytest.raises(SpeechexpError, match="00004.wav is corrupt or unreadable"):
        train(cfg)
    results = read_results(tmp_path / "run")
    assert results["status"] == "failed" and "00004.wav" in results["error"]


def test_metadata_naming_a_missing_file_fails_with_its_name(compose_train, tmp_path):
    from speechexp.data.sinusoids import SinusoidPreparer

    cfg = compose_train("debug=fdr", "dataset.preparer.n_examples=10")
    preparer_fields = {k: v for k, v in cfg.dataset.preparer.items() if k != "_target_"}
    folder = SinusoidPreparer(**preparer_fields).prepare(tmp_path / "data")
    (folder / "mixture" / "00007.wav").unlink()
    with pytest.raises(SpeechexpError, match=r"names .*mixture/00007.wav, which does not exist"):
        train(cfg)


def test_sample_rate_mismatch_fails_with_the_file(compose_train, tmp_path):
    cfg = compose_train("debug=fdr", "dataset.preparer.n_examples=10", "dataset.datamodule.sample_rate=16000")
    with pytest.raises(SpeechexpError, match=r"00000.wav has sample rate 8000 Hz but 16000 Hz is expected"):
        train(cfg)
