"""Evaluating a checkpoint on a user's labelled folder (``dataset=labelled_folder``): the
index, its one-sentence refusals, per-source metrics, and scripts/bench_real_voices.py."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from speechexp.data import espeak
from speechexp.data.corpora.folder import LabelledFolderPreparer
from speechexp.errors import SpeechexpError
from speechexp.evaluate import evaluate
from speechexp.tasks.asr_emotion import per_source_metrics
from tests.conftest import REPO, compose_config
from tests.test_inference import TINY_ASR, train_tiny

SAID = [("a/one.wav", "the red cup", "happy", 8000), ("a/two.flac", "please take the key", "", 22050),
        ("b/three.wav", "my sister sang", "sad", 44100), ("b/four.wav", "where is the bag", "", 16000)]


def make_folder(root: Path) -> Path:
    for path, text, _emotion, rate in SAID:
        audio = espeak.synthesize(text, "en-us+m3")
        audio = librosa.resample(audio, orig_sr=espeak.sample_rate(), target_sr=rate)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / path, audio, rate)
    with (root / "transcripts.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "text", "emotion", "note"])
        writer.writerows([(p, t, e, "ignored") for p, t, e, _ in SAID])
    return root


def test_the_folder_is_indexed_as_test_rows_per_source(tmp_path):
    root = make_folder(tmp_path / "mine")
    rows = LabelledFolderPreparer(root=str(root)).rows()
    assert [r["split"] for r in rows] == ["test"] * 4
    assert [r["source"] for r in rows] == ["a", "a", "b", "b"] and [r["speaker"] for r in rows] == ["a", "a", "b", "b"]
    assert [r["sample_rate"] for r in rows] == [rate for *_, rate in SAID]
    assert [r["emotion"] for r in rows] == ["happy", "", "sad", ""]
    assert all(Path(r["path"]).is_absolute() and 0.5 < r["duration"] < 5 for r in rows)


def test_bad_folders_are_refused_in_one_sentence(tmp_path):
    root = make_folder(tmp_path / "mine")
    cases = []
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=None).rows()
    cases.append((refused, "dataset.root=DIR"))
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(tmp_path)).rows()
    cases.append((refused, "transcripts.csv"))
    text = (root / "transcripts.csv").read_text()
    (root / "transcripts.csv").write_text(text.replace("path,text", "file,text", 1))
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(root)).rows()
    cases.append((refused, "missing: path"))
    (root / "transcripts.csv").write_text(text + "b/gone.wav,nothing,,\n")
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(root)).rows()
    cases.append((refused, "line 6 names b/gone.wav"))
    for refusal, expected in cases:
        assert "\n" not in str(refusal.value) and expected in str(refusal.value), str(refusal.value)


def test_an_edited_transcripts_file_is_indexed_again(tmp_path):
    root = make_folder(tmp_path / "mine")
    before = LabelledFolderPreparer(root=str(root)).fingerprint()
    assert LabelledFolderPreparer(root=str(root)).fingerprint() == before
    path = root / "transcripts.csv"
    path.write_text(path.read_text().replace("the red cup", "the red cap"))
    assert LabelledFolderPreparer(root=str(root)).fingerprint() != before


def test_per_source_metrics_count_each_source_on_its_own():
    rows = [{"source": "a", "text": "abcd", "hypothesis": "abcd", "emotion": "happy", "predicted_emotion": "happy"},
            {"source": "a", "text": "ab", "hypothesis": "xb", "emotion": "sad", "predicted_emotion": "happy"},
            {"source": "b", "text": "hello there", "hypothesis": "hello", "emotion": "", "predicted_emotion": "sad"}]
    metrics = per_source_metrics(rows, ["happy", "sad"])
    assert metrics["test/cer/a"] == pytest.approx(1 / 6) and metrics["test/wer/a"] == pytest.approx(1 / 2)
    assert metrics["test/cer/b"] == pytest.approx(6 / 11) and metrics["test/wer/b"] == pytest.approx(1 / 2)
    assert metrics["test/uar/a"] == pytest.approx(0.5) and "test/uar/b" not in metrics
    assert per_source_metrics(rows[:2], ["happy", "sad"]) == {}  # one source: the overall metrics say it


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder_eval")
    results = train_tiny(root, "asr", *TINY_ASR, "trainer.max_epochs=1")
    return Path(results["best_checkpoint"])


def test_eval_on_a_labelled_folder_reports_each_source(checkpoint, tmp_path):
    root = make_folder(tmp_path / "mine")
    cfg = compose_config("eval", [f"ckpt_path={checkpoint}", "dataset=labelled_folder", f"dataset.root={root}",
                                  f"paths.data_dir={tmp_path / 'data'}", "report=false"], tmp_path / "eval")
    evaluate(cfg)
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    for key in ("test/cer", "test/wer", "test/cer/a", "test/cer/b", "test/wer/a", "test/wer/b", "test/uar",
                "test/uar/a", "test/uar/b"):
        assert isinstance(results[key], float) and results[key] >= 0, key
    with (tmp_path / "eval" / "test_predictions.csv").open(newline="") as handle:
        predictions = list(csv.DictReader(handle))
    assert sorted((p["source"], p["emotion"]) for p in predictions) == [("a", ""), ("a", "happy"), ("b", ""),
                                                                        ("b", "sad")]
    assert {p["text"] for p in predictions} == {t for _, t, _, _ in SAID}
    assert np.isfinite(results["test/loss"])


def test_bench_real_voices_prints_a_row_per_source(checkpoint, tmp_path):
    root = make_folder(tmp_path / "mine")
    done = subprocess.run([sys.executable, "scripts/bench_real_voices.py", str(checkpoint), "--folder", str(root),
                           "--json", str(tmp_path / "rows.json")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [(r["set"], r["utterances"]) for r in rows] == [("mine/a", 2), ("mine/b", 2), ("mine", 4)]
    assert "| mine/a | 2 |" in done.stdout and all(0 <= r["cer"] for r in rows)


@pytest.mark.skipif(not Path(REPO.parent / "shared" / "real-dev" / "transcripts.csv").is_file(),
                    reason="the real-dev recordings are not beside this checkout")
def test_real_dev_is_indexed_without_copying_it():
    root = REPO.parent / "shared" / "real-dev"
    rows = LabelledFolderPreparer(root=str(root)).rows()
    assert len(rows) == 74 and {r["source"] for r in rows} == {"tuxpaint", "alsa"}
    assert all(r["path"].startswith(str(root.resolve())) for r in rows)
