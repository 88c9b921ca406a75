"""Evaluating a checkpoint on a user's labelled folder (``dataset=labelled_folder``): the
index, its one-sentence refusals, per-source metrics, and scripts/bench_real_voices.py."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
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
from speechexp.tasks.intervals import character_edits, rate_interval
from torchmetrics.functional.text import char_error_rate
from tests.conftest import REPO, compose_config, run_script
from tests.test_inference import TINY_ASR, train_tiny

# two sources (folders a and b), four rates, an unlabelled row and one whose emotion no checkpoint knows
SAID = [("a/one.wav", "The red cup!", "happy", 8000), ("a/two.flac", "please take the key", "", 22050),
        ("b/three.wav", "My sister sang.", "Sad", 44100), ("b/four.wav", "where is the bag", "bored", 16000)]
NORMALISED = ["the red cup", "please take the key", "my sister sang", "where is the bag"]


def make_folder(root: Path, emotions: bool = True) -> Path:
    for path, text, _emotion, rate in SAID:
        audio = espeak.synthesize(text, "en-us+m3")
        audio = librosa.resample(audio, orig_sr=espeak.sample_rate(), target_sr=rate)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / path, audio, rate)
    with (root / "transcripts.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "text", "emotion", "note"] if emotions else ["path", "text", "note"])
        writer.writerows([(p, t, e, "ignored") if emotions else (p, t, "ignored") for p, t, e, _ in SAID])
    return root


def test_the_folder_is_indexed_as_test_rows_per_source(tmp_path):
    root = make_folder(tmp_path / "mine")
    rows = LabelledFolderPreparer(root=str(root)).index()
    assert [r["split"] for r in rows] == ["test"] * 4
    assert [r["source"] for r in rows] == ["a", "a", "b", "b"] and [r["speaker"] for r in rows] == ["a", "a", "b", "b"]
    assert [r["sample_rate"] for r in rows] == [rate for *_, rate in SAID]
    assert [r["emotion"] for r in rows] == ["happy", "", "sad", "bored"]
    assert [r["text"] for r in rows] == NORMALISED
    assert all(Path(r["path"]).is_absolute() and 0.5 < r["duration"] < 5 for r in rows)


def test_bad_folders_are_refused_in_one_sentence(tmp_path):
    root = make_folder(tmp_path / "mine")
    cases = []
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=None).index()
    cases.append((refused, "dataset.root=DIR"))
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(tmp_path)).index()
    cases.append((refused, "transcripts.csv"))
    text = (root / "transcripts.csv").read_text()
    (root / "transcripts.csv").write_text(text.replace("path,text", "file,text", 1))
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(root)).index()
    cases.append((refused, "missing: path"))
    (root / "transcripts.csv").write_text(text + "b/gone.wav,nothing,,\n")
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(root)).index()
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


def test_source_and_speaker_columns_win_and_split_by_speaker_splits_like_a_corpus(tmp_path):
    root = make_folder(tmp_path / "mine")
    path = root / "transcripts.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",source,speaker"] + [line + f",mic,ann{i % 2}" for i, line in
                                                                 enumerate(lines[1:])]) + "\n")
    rows = LabelledFolderPreparer(root=str(root)).index()
    assert {r["source"] for r in rows} == {"mic"} and [r["speaker"] for r in rows] == ["ann0", "ann1"] * 2
    split = LabelledFolderPreparer(root=str(root), split_by="speaker", val_fraction=0.0, test_fraction=0.5).index()
    by_speaker = {r["speaker"]: r["split"] for r in split}
    assert sorted(by_speaker.values()) == ["test", "train"] and all(by_speaker[r["speaker"]] == r["split"] for r in split)
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(root), split_by="file").prepare(tmp_path / "data")
    assert "split_by='file'" in str(refusal := refused.value) and "\n" not in str(refusal)


def test_a_row_without_letters_is_refused_and_the_prepared_folder_keeps_the_audio_in_place(tmp_path):
    root = make_folder(tmp_path / "mine")
    folder = LabelledFolderPreparer(root=str(root)).prepare(tmp_path / "data")
    with (folder / "metadata.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows] == [str((root / p).resolve()) for p, *_ in SAID]
    assert not list(folder.rglob("*.wav")) and [r["source"] for r in rows] == ["a", "a", "b", "b"]
    path = root / "transcripts.csv"
    path.write_text(path.read_text() + "a/one.wav,?!,,\n")
    with pytest.raises(SpeechexpError) as refused:
        LabelledFolderPreparer(root=str(root)).prepare(tmp_path / "data")
    assert "line 6 has no letters" in str(refused.value) and "\n" not in str(refused.value)


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


def evaluate_folder(checkpoint: Path, root: Path, out: Path, *overrides: str) -> tuple[dict, list[dict]]:
    cfg = compose_config("eval", [f"ckpt_path={checkpoint}", "dataset=labelled_folder", f"dataset.root={root}",
                                  f"paths.data_dir={out / 'data'}", "report=false", *overrides], out / "eval")
    evaluate(cfg)
    results = json.loads((out / "eval" / "results.json").read_text())
    with (out / "eval" / "test_predictions.csv").open(newline="") as handle:
        return results, list(csv.DictReader(handle))


def test_eval_on_a_labelled_folder_reports_each_source(checkpoint, tmp_path):
    root = make_folder(tmp_path / "mine")
    results, predictions = evaluate_folder(checkpoint, root, tmp_path)
    for key in ("test/cer", "test/wer", "test/cer/a", "test/cer/b", "test/wer/a", "test/wer/b", "test/uar",
                "test/uar/a", "test/uar/b"):
        assert isinstance(results[key], float) and np.isfinite(results[key]) and results[key] >= 0, key
    # every row is scored for CER/WER; "bored" is no emotion of the checkpoint's, so that row is unlabelled
    assert sorted((p["source"], p["emotion"]) for p in predictions) == [("a", ""), ("a", "happy"), ("b", ""),
                                                                        ("b", "sad")]
    assert [p["text"] for p in sorted(predictions, key=lambda p: p["path"])] == [NORMALISED[i] for i in (0, 1, 3, 2)]
    assert np.isfinite(results["test/loss"])
    # the overall CER is the CER of all four rows, whatever their emotion
    assert results["test/cer"] == pytest.approx(float(char_error_rate([p["hypothesis"] for p in predictions],
                                                                      [p["text"] for p in predictions])), abs=1e-5)
    # with its interval over the four utterances, the same the bench prints
    low, high = rate_interval(*character_edits([p["hypothesis"] for p in predictions], [p["text"] for p in predictions]))
    assert (results["test/cer_low"], results["test/cer_high"]) == pytest.approx((low, high), abs=1e-6)
    assert results["test/cer_low"] <= results["test/cer"] + 1e-6 and results["test/cer"] <= results["test/cer_high"] + 1e-6
    assert (tmp_path / "eval" / "figures" / "emotion_confusion.png").is_file()


def test_eval_on_a_folder_without_transcripts_or_with_a_bad_row_is_refused_before_its_run_dir_is_written(
        checkpoint, tmp_path):
    (tmp_path / "mine").mkdir()
    with pytest.raises(SpeechexpError, match=r"mine/transcripts.csv does not exist; pass dataset.root=DIR"):
        evaluate_folder(checkpoint, tmp_path / "mine", tmp_path)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "data").exists()
    root = make_folder(tmp_path / "ours")
    (root / "b" / "four.wav").write_bytes(b"RIFF, but no audio")
    with pytest.raises(SpeechexpError, match=r"ours/transcripts.csv line 5 names b/four.wav, which is missing or "
                                             r"not readable audio"):
        evaluate_folder(checkpoint, root, tmp_path)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "data").exists()


def test_eval_without_any_emotion_reports_cer_and_no_emotion_metrics(checkpoint, tmp_path):
    root = make_folder(tmp_path / "mine", emotions=False)
    results, predictions = evaluate_folder(checkpoint, root, tmp_path)
    assert len(predictions) == 4 and {p["emotion"] for p in predictions} == {""}
    assert {"test/cer", "test/wer", "test/cer/a", "test/cer/b"} <= set(results)
    assert not [key for key in results if "uar" in key or "accuracy" in key or "emotion_ce" in key or "score" in key]
    assert all(np.isfinite(value) for value in results.values() if isinstance(value, float))
    assert not (tmp_path / "eval" / "figures" / "emotion_confusion.png").exists()


def test_beam_lm_on_a_folder_fits_its_model_on_the_checkpoints_training_transcripts(checkpoint, tmp_path):
    """A folder has no training split: the word model comes from the transcripts the checkpoint
    saved, so every word decoded is a training word."""
    pytest.importorskip("flashlight.lib.text.decoder")
    import torch

    from speechexp.tasks.asr_emotion import TRANSCRIPTS_KEY

    training_words = {w for t in torch.load(checkpoint, weights_only=False)[TRANSCRIPTS_KEY] for w in t.split()}
    results, predictions = evaluate_folder(checkpoint, make_folder(tmp_path / "mine"), tmp_path, "decoder=beam_lm")
    assert results["decoder"].startswith("beam_lm") and len(predictions) == 4
    decoded = {w for p in predictions for w in p["hypothesis"].split()}
    assert decoded and decoded <= training_words


def test_bench_real_voices_prints_a_row_per_source(checkpoint, tmp_path):
    root = make_folder(tmp_path / "mine")
    corpus = tmp_path / "corpus"  # its training text holds five of the folder's twelve words ("key" only in val)
    corpus.mkdir()
    (corpus / "metadata.csv").write_text("path,text,split\nx.wav,The red CUP.,train\ny.wav,please take,train\n"
                                         "z.wav,the key,val\n")
    done = run_script("scripts/bench_real_voices.py", str(checkpoint), "--folder", str(root), "--corpus", str(corpus),
                      "--reference", "pocketsphinx", "--against", str(checkpoint), "--json", str(tmp_path / "rows.json"))
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "rows.json").read_text())
    rows = written["rows"]
    assert [(r["set"], r["utterances"], r["seen"]) for r in rows] == [
        ("mine/a", 2, "5 of 6"), ("mine/b", 2, "1 of 7"), ("mine", 4, "5 of 12"),
        ("mine/a (pocketsphinx)", 2, "5 of 6"), ("mine/b (pocketsphinx)", 2, "1 of 7"), ("mine (pocketsphinx)", 4, "5 of 12")]
    assert "| mine/a | 2 |" in done.stdout and "5 of 6 |" in done.stdout and all(0 <= r["cer"] for r in rows)
    assert "| mine (pocketsphinx) | 4 |" in done.stdout
    # each CER with its interval over the utterances; against itself, the paired difference is nil
    assert all(r["cer_low"] <= r["cer"] + 1e-9 and r["cer"] <= r["cer_high"] + 1e-9 for r in rows)
    mine = rows[2]
    assert f"| mine | 4 | {mine['cer']:.3f} | {mine['cer_low']:.3f} to {mine['cer_high']:.3f} |" in done.stdout
    assert [(r["set"], r["difference"], r["low"], r["high"], r["ours_better"]) for r in written["against"]] == [
        (name, 0.0, 0.0, 0.0, 0.0) for name in ("mine/a", "mine/b", "mine")]
    assert f"| mine | {mine['cer']:.3f} | {mine['cer']:.3f} | +0.000 | 0.000 to 0.000 | 0.0% |" in done.stdout
    missing = run_script("scripts/bench_real_voices.py", str(checkpoint), "--folder", str(root), "--corpus", str(tmp_path))
    assert missing.returncode != 0 and "has no metadata.csv" in missing.stderr


def load_bench():
    """scripts/bench_real_voices.py as a module."""
    spec = importlib.util.spec_from_file_location("bench_real_voices", REPO / "scripts" / "bench_real_voices.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_two_checkpoints_are_compared_recording_by_recording():
    bench = load_bench()
    said = [("a/1.wav", "a", "front left"), ("a/2.wav", "a", "rear right"), ("b/3.wav", "b", "cow"), ("b/4.wav", "b", "pig")]
    ours = [{"path": p, "source": s, "text": t, "hypothesis": t} for p, s, t in said]
    heard = {"a/1.wav": "front laft", "b/3.wav": "ca"}  # theirs: one edit in a, two in b
    theirs = [{**row, "hypothesis": heard.get(row["path"], row["text"])} for row in reversed(ours)]
    rows = bench.difference_rows(Path("mine"), ours, theirs)
    assert [r["set"] for r in rows] == ["mine/a", "mine/b", "mine"] and all(r["cer"] == 0 for r in rows)
    assert [r["cer_against"] for r in rows] == pytest.approx([1 / 20, 2 / 6, 3 / 26])
    assert [r["difference"] for r in rows] == pytest.approx([-1 / 20, -2 / 6, -3 / 26])
    assert all(r["low"] <= r["difference"] <= r["high"] <= 0 for r in rows)
    assert 0.5 < rows[2]["ours_better"] < 1  # draws without the two misheard recordings tie
    with pytest.raises(SystemExit, match="--against read other recordings than the checkpoint did"):
        bench.difference_rows(Path("mine"), ours, theirs[1:])


def test_a_failed_evaluation_is_told_in_its_own_sentence_or_hydras_error():
    bench = load_bench()
    ours = "[2026-12-07][speechexp][INFO] - Evaluating\nError: Checkpoint x.ckpt does not exist; pass ckpt_path=PATH.\n"
    assert bench.failure(ours) == "Error: Checkpoint x.ckpt does not exist; pass ckpt_path=PATH."
    hydras = ("In 'eval': Could not find 'decoder/nodecoder'\n\nAvailable options in 'decoder':\n\tbeam\n\tgreedy\n"
              "Config search path:\n\tprovider=hydra, path=pkg://hydra.conf\n\n"
              "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n")
    assert bench.failure(hydras) == ("In 'eval': Could not find 'decoder/nodecoder' Available options in 'decoder': "
                                     "beam greedy")
    crash = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad shape\n"
    assert bench.failure(crash) == "ValueError: bad shape" and bench.failure("") == "(no output)"


def test_the_pocketsphinx_reference_reads_clear_speech_at_any_rate_and_scores_it_per_source(tmp_path):
    """Digits from espeak's en-us+f2, which PocketSphinx reads word for word, at 22.05 and 44.1 kHz
    (resampled to its 16 kHz, scaled to 16 bits: a slip in either reads them wrong), and a source
    whose transcript is not what its file says."""
    bench = load_bench()
    said = [("digits/a.wav", "one two three", "one two three", 22050),
            ("digits/b.wav", "four five six", "four five six", 44100),
            ("other/c.wav", "thank you very much", "nine four", 16000)]  # path, spoken, transcript, rate
    for path, spoken, _, rate in said:
        audio = librosa.resample(espeak.synthesize(spoken, "en-us+f2"), orig_sr=espeak.sample_rate(), target_sr=rate)
        (tmp_path / path).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / path, np.pad(audio, int(0.3 * rate)), rate)
    with (tmp_path / "transcripts.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "text"), *[(path, text) for path, _, text, _ in said]])
    results, rows = bench.pocketsphinx_results(bench.pocketsphinx_decoder(), tmp_path)
    assert [(Path(row["path"]).name, row["source"], row["text"]) for row in rows] == [
        ("a.wav", "digits", "one two three"), ("b.wav", "digits", "four five six"), ("c.wav", "other", "nine four")]
    assert [row["hypothesis"] for row in rows[:2]] == ["one two three", "four five six"]
    assert results["test/cer/digits"] == 0.0 and results["test/wer/digits"] == 0.0
    assert set(results) == {f"test/{m}{s}" for m in ("cer", "wer") for s in ("", "/digits", "/other")}
    assert 0 < results["test/cer"] < results["test/cer/other"]  # the overall rate pools both sources' characters


def test_bench_real_voices_names_a_missing_reference_recogniser_before_any_work(tmp_path):
    fake = tmp_path / "fake" / "pocketsphinx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    done = subprocess.run([sys.executable, "scripts/bench_real_voices.py", "no.ckpt", "--reference", "pocketsphinx"],
                          capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("--reference pocketsphinx needs PocketSphinx; install it with "
                                   ".venv/bin/pip install 'speechexp[reference]' (or pip install pocketsphinx).")


def test_voice_folder_lists_a_splits_utterances_of_the_sources_asked(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = ["path,text,emotion,speaker,split,source"] + [
        f"w/{split}{i}.wav,text {i},sad,s{i},{split},{source}"
        for split in ("train", "test") for i, source in enumerate(["espeak", "espeak", "espeak", "flite:awb"])]
    (corpus / "metadata.csv").write_text("\n".join(lines) + "\n")

    def listed(*options: str) -> tuple[int, list[dict], str]:
        out = tmp_path / "out"
        done = run_script("scripts/voice_folder.py", str(corpus), str(out), *options)
        rows = list(csv.DictReader((out / "transcripts.csv").open())) if done.returncode == 0 else []
        return done.returncode, rows, done.stderr

    _, rows, _ = listed()  # by default: the test split's natural voices
    assert [(Path(r["path"]).name, r["source"]) for r in rows] == [("test3.wav", "flite:awb")]
    assert Path(rows[0]["path"]).is_absolute()
    _, rows, _ = listed("--split", "train", "--source", "espeak", "--limit", "2")
    assert len(rows) == 2 and {r["source"] for r in rows} == {"espeak"}
    assert {Path(r["path"]).name for r in rows} < {"train0.wav", "train1.wav", "train2.wav"}
    code, _, stderr = listed("--split", "val")
    assert code != 0 and "No val rows" in stderr


def test_bench_real_voices_also_scores_the_transcripts_said_by_a_tts_voice(checkpoint, tmp_path):
    """``--speak`` adds rows for the same words in a known voice, per source, beside the recordings."""
    from speechexp.data.tts import flite

    bad = run_script("scripts/bench_real_voices.py", str(checkpoint), "--speak", "nosuch:voice")
    assert bad.returncode != 0 and "Unknown speech engine 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr
    if not flite.available("awb"):
        pytest.skip("flite is not installed here (make voices)")
    root = make_folder(tmp_path / "mine")
    done = run_script("scripts/bench_real_voices.py", str(checkpoint), "--folder", str(root), "--speak", "flite:awb",
                      "--json", str(tmp_path / "rows.json"))
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [(r["set"], r["utterances"]) for r in rows] == [("mine/a", 2), ("mine/b", 2), ("mine", 4),
                                                           ("mine-flite-awb/a", 2), ("mine-flite-awb/b", 2),
                                                           ("mine-flite-awb", 4)]
    assert all(0 <= r["cer"] for r in rows) and "| mine-flite-awb | 4 |" in done.stdout


def test_spoken_folder_holds_the_voices_own_rendering_of_each_transcript_at_distinct_paths(tmp_path):
    """Each row is said anew by the voice (not copied), and x.flac / x.wav do not overwrite each other."""
    from speechexp.data.tts import Style, flite, synthesize

    if not flite.available("awb"):
        pytest.skip("flite is not installed here (make voices)")
    root = make_folder(tmp_path / "mine")
    sf.write(root / "a" / "two.wav", np.zeros(800), 8000)  # a second "a/two", beside a/two.flac
    with (root / "transcripts.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(["a/two.wav", "the cat", "", "ignored"])
    spoken = load_bench().spoken_folder(root, "flite:awb", tmp_path / "out")
    with (spoken / "transcripts.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["text"] for r in rows] == [t for _, t, _, _ in SAID] + ["the cat"]
    assert len({r["path"] for r in rows}) == 5 and rows[1]["path"] == "a/two.wav" and rows[4]["path"].startswith("a/two-")
    for row in rows:
        audio, rate = sf.read(spoken / row["path"], dtype="float32")
        expected = synthesize("flite:awb", row["text"], Style())
        assert rate == expected.sample_rate and audio.shape == expected.audio.shape
        assert np.abs(audio - expected.audio).max() < 1e-3  # 16-bit WAV rounding


@pytest.mark.skipif(not Path(REPO.parent / "shared" / "real-dev" / "transcripts.csv").is_file(),
                    reason="the real-dev recordings are not beside this checkout")
def test_real_dev_is_indexed_without_copying_it():
    root = REPO.parent / "shared" / "real-dev"
    rows = LabelledFolderPreparer(root=str(root)).index()
    assert len(rows) == 74 and {r["source"] for r in rows} == {"tuxpaint", "alsa"}
    assert all(r["path"].startswith(str(root.resolve())) for r in rows)
