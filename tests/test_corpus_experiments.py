"""experiment=asr_emotion_<corpus> needs only dataset.root: a fast_dev_run of each on a
tiny folder laid out and named like the real corpus (tones stand in for speech)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechexp.train import train


def tone(path: Path, sample_rate: int, seconds: float = 2.0, pitch: float = 220.0) -> None:
    """Two seconds of a sine: long enough for CTC to fit the longest transcript at stride 2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * pitch * t), sample_rate, subtype="PCM_16")


def ravdess(root: Path) -> None:
    for actor in range(1, 11):
        for emotion in ("01", "03", "04", "05", "06"):
            tone(root / f"Actor_{actor:02d}" / f"03-01-{emotion}-01-01-01-{actor:02d}.wav", 48000)


def crema_d(root: Path) -> None:
    for actor in range(1001, 1011):
        for emotion in ("NEU", "HAP", "SAD", "ANG", "FEA"):
            tone(root / f"{actor}_IEO_{emotion}_XX.wav", 16000)


def tess(root: Path) -> None:
    for word in ("back", "bar", "base", "bath", "bean", "beg", "bite", "boat", "bone", "book"):
        for speaker in ("OAF", "YAF"):
            for emotion in ("neutral", "happy", "sad", "angry", "fear"):
                tone(root / f"{speaker}_{emotion}" / f"{speaker}_{word}_{emotion}.wav", 24414)


def emodb(root: Path) -> None:
    for speaker in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"):
        for emotion in ("N", "F", "T", "W", "A"):
            tone(root / "wav" / f"{speaker}a01{emotion}a.wav", 16000)


@pytest.mark.parametrize("corpus,build", [("ravdess", ravdess), ("crema_d", crema_d), ("tess", tess),
                                          ("emodb", emodb)])
def test_corpus_experiment_runs_with_only_its_root(corpus, build, compose_train, tmp_path):
    root = tmp_path / f"{corpus}_copy"
    build(root)
    cfg = compose_train(f"experiment=asr_emotion_{corpus}", f"dataset.root={root}", "debug=fdr",
                        "trainer.enable_progress_bar=false", run_name=corpus)
    assert cfg.dataset.name == corpus and cfg.task.name == "asr_emotion"
    train(cfg)
    results = json.loads((tmp_path / corpus / "results.json").read_text())
    assert results["status"] == "completed", results.get("error")
    for key in ("test/cer", "test/wer", "test/uar", "test/ctc"):
        assert np.isfinite(results[key]), key
    predictions = (tmp_path / corpus / "test_predictions.csv").read_text().splitlines()
    assert len(predictions) > 1 and str(root) in predictions[1]
