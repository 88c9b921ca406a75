"""Using trained models on a user's audio: the Python API (``speechexp.load_model``) and
``speechexp-infer``, on tiny checkpoints of both tasks trained once for this module."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError
from speechexp.inference.separation import separate_batch, taper, window_starts
from speechexp.inference.transcription import word_timings
from speechexp.io import read_wav
from speechexp.train import train
from tests.conftest import REPO, compose_config, run_cli, run_cli_each

TINY_ASR = ("experiment=asr_emotion", "dataset.preparer.num_speakers=10", "dataset.preparer.utterances_per_speaker=5",
            "dataset.preparer.num_sentences=30")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def train_tiny(root: Path, name: str, *overrides: str) -> dict:
    cfg = compose_config("train", [f"paths.data_dir={root / 'data'}", "~logger", "trainer.enable_progress_bar=false",
                                   "trainer.enable_model_summary=false", *overrides], root / name)
    train(cfg)
    return json.loads((root / name / "results.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A separation run (2 epochs on 40 mixtures) and an asr_emotion run (1 epoch, 50 utterances)."""
    root = tmp_path_factory.mktemp("inference")
    separation = train_tiny(root, "separation", "experiment=separation", "dataset.preparer.n_examples=40",
                            "trainer.max_epochs=2")
    asr = train_tiny(root, "asr", *TINY_ASR, "trainer.max_epochs=1")
    return {"root": root, "separation": separation, "asr": asr}


def test_import_speechexp_stays_light():
    code = "import sys, speechexp; assert 'torch' not in sys.modules; print(callable(speechexp.load_model))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ},
                          cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


def test_windows_are_aligned_and_overlap_added_exactly():
    """A fake separator whose source order flips between windows: overlap-add still
    returns each source intact once every window is put in the first one's order."""
    calls = itertools.count()

    class Flipping(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):  # [batch, time] -> [batch, 2, time]
            out = torch.stack([x.clamp(min=0), x.clamp(max=0)], 1)
            return out.flip(1) if next(calls) % 2 else out

    signal = torch.randn(1000)
    assert window_starts(1000, 300, 100) == [0, 200, 400, 600, 700] and window_starts(200, 300, 100) == [0]
    weight = taper(300, 100)
    assert weight.min() > 0 and weight[100:200].eq(1).all()
    (sources,) = separate_batch(Flipping(), [signal], chunk=300, overlap=100, batch_size=1)
    ordered = sources if sources[0].ge(0).all() else sources.flip(0)
    torch.testing.assert_close(ordered, torch.stack([signal.clamp(min=0), signal.clamp(max=0)]))


def test_word_timings_follow_the_viterbi_path():
    tokenizer = CharTokenizer()
    frames = "hh-i--  -yyo-u"  # '-' blank, ' ' the space label
    ids = [0 if c == "-" else tokenizer.chars.index(c) + 1 for c in frames]
    log_probs = torch.full((len(frames), tokenizer.vocab_size), -20.0)
    log_probs[torch.arange(len(frames)), torch.tensor(ids)] = 0.0
    words = word_timings(log_probs.log_softmax(-1), "hi you", tokenizer, frame_seconds=0.04)
    assert [(w.word, w.start_s, w.end_s) for w in words] == [("hi", 0.0, 0.16), ("you", 0.36, 0.56)]


def test_api_separates_batches_like_single_files_at_their_rate_and_length(trained):
    from speechexp import load_model

    model = load_model(trained["separation"]["best_checkpoint"])
    assert model.kind == "separation" and model.sample_rate == 8000
    dataset = Path(trained["separation"]["dataset_dir"])
    rows = [r for r in read_rows(dataset / "metadata.csv") if r["split"] == "test"]
    mixtures = [read_wav(dataset / r["mixture"]) for r in rows]
    # the test mixtures through the API reach the run's test SI-SNR (same model, same audio)
    scores = []
    for mixture, row, estimate in zip(mixtures, rows, model.separate(mixtures, 8000)):
        truth = torch.stack([torch.from_numpy(read_wav(dataset / row[c])) for c in ("source1", "source2")])
        scores.append(max(scale_invariant_signal_noise_ratio(torch.from_numpy(estimate)[list(p)], truth).mean().item()
                          for p in itertools.permutations(range(2))))
    assert np.mean(scores) == pytest.approx(trained["separation"]["test/si_snr"], abs=0.05)
    # any rate, channels and sample format; a batch gives what single calls give
    stereo_44k = np.stack([librosa.resample(mixtures[0], orig_sr=8000, target_sr=44100)] * 2, axis=1)
    long_16k = librosa.resample(np.tile(mixtures[1], 9), orig_sr=8000, target_sr=16000)  # 9 s: windows
    int16 = (mixtures[2] * 32767).astype(np.int16)
    batch = model.separate([stereo_44k, long_16k, int16], [44100, 16000, 8000])
    for audio, rate, out in zip((stereo_44k, long_16k, int16), (44100, 16000, 8000), batch):
        single = model.separate(audio, rate)
        assert out.shape == single.shape == (2, audio.shape[0]) and out.dtype == np.float32
        np.testing.assert_allclose(out, single, atol=1e-5)
    np.testing.assert_allclose(batch[2], model.separate(mixtures[2], 8000), atol=1e-4)  # int16 is scaled to [-1, 1)


def test_api_transcribes_batches_like_single_files_with_speaker_means(trained):
    from speechexp import load_model

    model = load_model(trained["asr"]["best_checkpoint"])
    assert model.kind == "asr_emotion" and model.speaker_norm and model.emotion_names == [
        "neutral", "happy", "sad", "angry", "fearful"]
    dataset = Path(trained["asr"]["dataset_dir"])
    rows = [r for r in read_rows(dataset / "metadata.csv") if r["split"] == "test"][:4]
    audio = [read_wav(dataset / r["path"]) for r in rows]
    single = [model.transcribe(a, 16000) for a in audio]
    batch = model.transcribe([audio[0], librosa.resample(audio[1], orig_sr=16000, target_sr=22050), *audio[2:]],
                             [16000, 22050, 16000, 16000])
    for one, many in zip(single, batch):
        assert one.text == many.text and one.emotion == many.emotion
        assert set(one.emotion_probs) == set(model.emotion_names)
        assert sum(one.emotion_probs.values()) == pytest.approx(1.0, abs=1e-5)
    for one, many in zip(single[::2], batch[::2]):  # same audio, same rate: same probabilities
        for name in model.emotion_names:
            assert one.emotion_probs[name] == pytest.approx(many.emotion_probs[name], abs=1e-5)
    # a stored speaker mean equals naming the batch's shared speaker
    mean = model.speaker_mean(audio, 16000)
    assert mean.shape == (model.speaker_mean_size,) == (80 + 9,)  # the recipe's head also reads prosody, with pitch
    stored = model.transcribe(audio, 16000, speaker_mean=mean)
    shared = model.transcribe(audio, 16000, speakers=["s"] * 4)
    for a, b in zip(stored, shared):
        assert a.text == b.text and a.emotion_probs == pytest.approx(b.emotion_probs, abs=1e-6)
    assert stored[0].emotion_probs != pytest.approx(single[0].emotion_probs, abs=1e-6)  # the mean matters
    long = model.transcribe(np.tile(audio[0], int(np.ceil(20 * 16000 / len(audio[0])))), 16000)  # 20 s and more
    assert isinstance(long.text, str) and long.emotion in model.emotion_names
    with pytest.raises(SpeechexpError, match="speaker_mean has shape"):
        model.transcribe(audio[0], 16000, speaker_mean=np.zeros(3))


def test_a_checkpoint_of_another_task_is_refused(trained, tmp_path):
    from speechexp import load_model

    checkpoint = torch.load(trained["separation"]["best_checkpoint"], map_location="cpu", weights_only=True)
    checkpoint["speechexp_config"]["task"]["module"]["_target_"] = "torch.nn.Identity"
    checkpoint["speechexp_config"]["task"]["name"] = "mystery"
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(SpeechexpError, match="trained for task 'mystery'.*pass a separation or asr_emotion"):
        load_model(tmp_path / "other.ckpt")


def test_the_other_kinds_method_names_the_kind_it_belongs_to(trained):
    from speechexp import load_model

    separator, recogniser = (load_model(trained[kind]["best_checkpoint"]) for kind in ("separation", "asr"))
    with pytest.raises(AttributeError, match=r"'AsrEmotionModel' object has no attribute 'separate': this checkpoint "
                                             r"was trained for task=asr_emotion, and separate belongs to "
                                             r"task=separation checkpoints; use transcribe\(\)\."):
        recogniser.separate(np.zeros(800), 8000)
    with pytest.raises(AttributeError, match=r"has no attribute 'speaker_mean': .* use separate\(\)\."):
        separator.speaker_mean([np.zeros(800)], 8000)
    with pytest.raises(AttributeError, match=r"^'SeparationModel' object has no attribute 'nonsense'$"):
        separator.nonsense  # noqa: B018 - a name neither kind has is Python's own error
    assert not hasattr(separator, "transcribe") and hasattr(separator, "separate")
    separator.task = object()  # a property failing inside shows its own error, not "no attribute 'sample_rate'"
    with pytest.raises(AttributeError, match=r"^'object' object has no attribute 'sample_rate'$"):
        separator.sample_rate  # noqa: B018


def write_mixed_folder(folder: Path, mixture: np.ndarray) -> dict[str, tuple[int, int]]:
    """Files of several formats, rates, channel counts and sample types, a corrupt and an
    empty one; returns each good file's (rate, samples)."""
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a_int16.wav", (mixture * 32767).astype(np.int16), 8000, subtype="PCM_16")
    stereo = librosa.resample(mixture, orig_sr=8000, target_sr=44100)
    sf.write(folder / "sub" / "b_stereo.flac", np.stack([stereo, 0.5 * stereo], 1), 44100, subtype="PCM_24")
    long = librosa.resample(np.tile(mixture, 10), orig_sr=8000, target_sr=16000)
    sf.write(folder / "c_long_float.wav", long, 16000, subtype="FLOAT")
    sf.write(folder / "d.ogg", librosa.resample(mixture, orig_sr=8000, target_sr=22050), 22050, format="OGG")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    (folder / "notes.txt").write_text("not audio")
    return {"a_int16.wav": (8000, len(mixture)), "sub/b_stereo.flac": (44100, len(stereo)),
            "c_long_float.wav": (16000, len(long)), "d.ogg": (22050, sf.info(folder / "d.ogg").frames)}


def test_cli_on_a_mixed_folder_writes_every_good_file_and_fails_the_bad(trained, tmp_path):
    from speechexp import load_model

    dataset = Path(trained["separation"]["dataset_dir"])
    mixture = read_wav(dataset / read_rows(dataset / "metadata.csv")[0]["mixture"])
    good = write_mixed_folder(tmp_path / "in", mixture)
    run_dir = tmp_path / "out"
    done = run_cli("infer", f"ckpt_path={trained['separation']['best_checkpoint']}", f"input={tmp_path / 'in'}",
                   f"hydra.run.dir={run_dir}", "chunk_seconds=2.0")
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: 2 of 6 files failed: ") and "Traceback" not in done.stderr
    rows = read_rows(run_dir / "predictions.csv")
    names = [Path(r["input"]).relative_to(tmp_path / "in").as_posix() for r in rows]
    assert names == ["a_int16.wav", "c_long_float.wav", "corrupt.wav", "d.ogg", "empty.wav", "sub/b_stereo.flac"]
    assert list(rows[0]) == ["input", "status", "error", "duration_s", "sample_rate", "source_1", "source_2"]
    by_name = dict(zip(names, rows))
    assert "corrupt" in by_name["corrupt.wav"]["error"] and "no samples" in by_name["empty.wav"]["error"]
    model = load_model(trained["separation"]["best_checkpoint"])
    for name, (rate, samples) in good.items():
        row = by_name[name]
        assert row["status"] == "ok" and row["error"] == "" and int(row["sample_rate"]) == rate
        assert float(row["duration_s"]) == pytest.approx(samples / rate, abs=1e-4)
        written = []
        for column in ("source_1", "source_2"):
            info = sf.info(run_dir / row[column])
            assert (info.samplerate, info.frames, info.channels) == (rate, samples, 1)
            written.append(sf.read(run_dir / row[column], dtype="float32")[0])
        audio, _ = sf.read(tmp_path / "in" / name, dtype="float32")
        expected = np.clip(model.separate(audio, rate, chunk_seconds=2.0), -1, 1)  # the CLI is the API
        np.testing.assert_allclose(np.stack(written), expected, atol=2e-4)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed" and results["files"] == 6 and results["failed_files"] == 2
    assert not (run_dir / ".predict_parts").exists()


def test_cli_ddp_sim_predicts_every_file_once(trained, tmp_path):
    from speechexp import load_model

    pattern = str(Path(trained["separation"]["dataset_dir"]) / "mixture" / "0000*.wav")  # a glob: 10 files
    run_dir = tmp_path / "ddp"
    done = run_cli("infer", f"ckpt_path={trained['separation']['best_checkpoint']}", f"input={pattern}",
                   "batch_size=2", "trainer=ddp_sim", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["files"] == 10 and results["files_per_process"] == [5, 5]
    rows = read_rows(run_dir / "predictions.csv")
    assert [r["input"] for r in rows] == [pattern.replace("*", str(k)) for k in range(10)]
    model = load_model(trained["separation"]["best_checkpoint"])
    for row in rows:
        assert row["status"] == "ok" and row["source_1"] == f"separated/{Path(row['input']).stem}_source_1.wav"
        expected = model.separate(read_wav(row["input"]), 8000)
        written = np.stack([read_wav(run_dir / row[c]) for c in ("source_1", "source_2")])
        np.testing.assert_allclose(written, np.clip(expected, -1, 1), atol=2e-4)


def test_cli_asr_with_folder_speakers_equals_eval_test_predictions(trained, tmp_path):
    """The test split, laid out one folder per speaker as the corpus is, with speakers=folder:
    the same transcripts and emotions as the run's test_predictions.csv."""
    dataset = Path(trained["asr"]["dataset_dir"])
    tested = read_rows(Path(trained["asr"]["run_dir"]) / "test_predictions.csv")
    for row in tested:
        link = tmp_path / "test" / Path(row["path"]).parent.name / Path(row["path"]).name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(row["path"])
    run_dir = tmp_path / "out"
    done = run_cli("infer", f"ckpt_path={trained['asr']['best_checkpoint']}", f"input={tmp_path / 'test'}",
                   "speakers=folder", f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_rows(run_dir / "predictions.csv")
    assert list(rows[0]) == ["input", "status", "error", "duration_s", "sample_rate", "transcript", "emotion",
                             "p_neutral", "p_happy", "p_sad", "p_angry", "p_fearful"]
    predicted = {Path(r["input"]).name: (r["transcript"], r["emotion"]) for r in rows}
    assert predicted == {Path(r["path"]).name: (r["hypothesis"], r["predicted_emotion"]) for r in tested}
    assert all(r["status"] == "ok" and int(r["sample_rate"]) == 16000 for r in rows)
    words = [json.loads(line) for line in (run_dir / "words.jsonl").read_text().splitlines()]
    assert [w["input"] for w in words] == [r["input"] for r in rows]
    assert len(list(dataset.glob("wavs/*/*.wav"))) == 50


def test_cli_decodes_files_with_the_checkpoints_language_model(trained, tmp_path):
    """speechexp-infer with decoder=beam_lm reads the training transcripts from the checkpoint
    (its files are no training datamodule) and spells only their words."""
    pytest.importorskip("flashlight.lib.text.decoder")
    tested = read_rows(Path(trained["asr"]["run_dir"]) / "test_predictions.csv")[:3]
    for row in tested:
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / Path(row["path"]).name).symlink_to(row["path"])
    done = run_cli("infer", f"ckpt_path={trained['asr']['best_checkpoint']}", f"input={tmp_path / 'in'}",
                   "decoder=beam_lm", f"hydra.run.dir={tmp_path / 'out'}")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_rows(tmp_path / "out" / "predictions.csv")
    dataset = Path(trained["asr"]["dataset_dir"])
    train_words = {w for text in read_rows(dataset / "metadata.csv") if text["split"] == "train"
                   for w in CharTokenizer().normalize(text["text"]).split()}
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert {w for r in rows for w in r["transcript"].split()} <= train_words


def test_missing_input_is_one_sentence_and_writes_nothing(trained, tmp_path):
    from speechexp.infer import infer

    cfg = compose_config("infer", [f"ckpt_path={trained['separation']['best_checkpoint']}",
                                   f"input={tmp_path / 'nope'}"], tmp_path / "out")
    with pytest.raises(SpeechexpError, match=r"^input=.*nope does not exist; pass input=FILE, a folder or a quoted glob"):
        infer(cfg)
    assert not (tmp_path / "out").exists()
    cfg = compose_config("infer", [f"input={tmp_path}"], tmp_path / "out")
    with pytest.raises(SpeechexpError, match="speechexp-infer needs ckpt_path"):
        infer(cfg)
    # a speakers table that is missing or leaves a file out, and a window of no length: refused before the run
    folder = trained["separation"]["dataset_dir"]
    unlisted = tmp_path / "speakers.csv"
    unlisted.write_text("path,speaker\nnot_an_input.wav,s1\n")
    for setting, message in ((f"speakers={tmp_path / 'none.csv'}", "is neither none, folder nor an existing CSV"),
                             (f"speakers={unlisted}", "does not list"),
                             ("chunk_seconds=-1", r"chunk_seconds=-1.0 is out of range: chunk_seconds must be greater"),
                             # windows a sample apart: 448001 of them for a minute at 8 kHz, against 17
                             ("overlap_seconds=4", r"overlap_seconds=4.0 must be at least 0 and shorter than "
                                                   r"chunk_seconds=4.0 \(the windows would start a sample apart\)")):
        cfg = compose_config("infer", [f"ckpt_path={trained['separation']['best_checkpoint']}", f"input={folder}",
                                       setting], tmp_path / "out")
        with pytest.raises(SpeechexpError, match=message):
            infer(cfg)
        assert not (tmp_path / "out").exists(), setting
    from speechexp import load_model

    model = load_model(trained["separation"]["best_checkpoint"])  # the API refuses them alike
    for settings, message in (({"chunk_seconds": 0}, r"chunk_seconds=0.0 must be greater than 0"),
                              ({"chunk_seconds": 1.0, "overlap_seconds": 1.5}, r"overlap_seconds=1.5 must be"),
                              ({"overlap_seconds": -0.1}, r"overlap_seconds=-0.1 must be at least 0")):
        with pytest.raises(SpeechexpError, match=message):
            model.separate(np.zeros(8000, dtype=np.float32), 8000, **settings)


def test_eval_with_beam_lm_fits_the_lm_on_training_transcripts_and_records_its_metrics(trained, tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    from speechexp.evaluate import evaluate

    checkpoint = trained["asr"]["best_checkpoint"]
    cfg = compose_config("eval", [f"ckpt_path={checkpoint}", "decoder=beam_lm",
                                  f"paths.data_dir={trained['root'] / 'data'}"], tmp_path / "eval")
    metrics = evaluate(cfg)
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["decoder"].startswith("beam_lm (beam 64, 3-gram")
    assert 0 <= metrics["test/wer"] and 0 <= metrics["test/cer"] and results["test/wer"] == metrics["test/wer"]
    dataset = Path(results["dataset_dir"])
    arpa = list((dataset / "lm").glob("words-3gram-*.arpa"))
    assert len(arpa) == 1  # fitted once, in the dataset folder
    test_words = {w for row in read_rows(tmp_path / "eval" / "test_predictions.csv") for w in row["hypothesis"].split()}
    train_words = {w for text in read_rows(dataset / "metadata.csv") if text["split"] == "train"
                   for w in CharTokenizer().normalize(text["text"]).split()}
    assert test_words <= train_words  # beam_lm spells only words of the training transcripts

    # the checkpoint carries the training transcripts: the API decodes with the LM anywhere
    from speechexp import load_model

    model = load_model(checkpoint, decoder="beam_lm")
    audio, rate = sf.read(read_rows(tmp_path / "eval" / "test_predictions.csv")[0]["path"], dtype="float32")
    result = model.transcribe(audio, rate)
    assert set(result.text.split()) <= train_words


def test_eval_with_beam_english_spells_english_and_training_words(trained, tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    pytest.importorskip("wordfreq")
    from speechexp.data.general_text import word_list
    from speechexp.evaluate import evaluate

    cfg = compose_config("eval", [f"ckpt_path={trained['asr']['best_checkpoint']}", "decoder=beam_english",
                                  "decoder.english_words=2000", "decoder.word_score=3",  # a tiny model: words, not silence
                                  f"paths.data_dir={trained['root'] / 'data'}"],
                         tmp_path / "eval")
    metrics = evaluate(cfg)
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["decoder"].startswith("beam_english (beam 64, 2000 English words, unigram")
    assert 0 <= metrics["test/cer"] and results["test/cer"] == metrics["test/cer"]
    dataset = Path(results["dataset_dir"])
    assert len(list((dataset / "lm").glob("english-2000-*.arpa"))) == 1
    train_words = {w for text in read_rows(dataset / "metadata.csv") if text["split"] == "train"
                   for w in CharTokenizer().normalize(text["text"]).split()}
    spelled = {w for row in read_rows(tmp_path / "eval" / "test_predictions.csv") for w in row["hypothesis"].split()}
    assert spelled and spelled <= train_words | set(word_list(2000)[0])


def test_a_decoder_for_a_separation_checkpoint_is_refused_before_anything_is_written(trained, tmp_path):
    ckpt = trained["separation"]["best_checkpoint"]
    calls = [("infer", [f"ckpt_path={ckpt}", f"input={trained['separation']['dataset_dir']}", "decoder=beam",
                        f"hydra.run.dir={tmp_path / 'out'}"]),
             ("evaluate", [f"ckpt_path={ckpt}", "decoder=beam", f"hydra.run.dir={tmp_path / 'eval'}"])]
    for done in run_cli_each(calls):
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1].startswith("Error: decoder=beam cannot be used with task=separation")
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()


def test_a_model_trained_with_speaker_mean_dropout_reads_a_lone_recording_with_its_saved_mean(trained, tmp_path):
    """speaker_mean_dropout: the training speakers' mean is saved with the weights, and a
    recording with no other recording of its speaker is normalised with it, not its own mean."""
    from speechexp import load_model
    from speechexp.tasks.asr_emotion import LONE_MEAN_KEY

    run = trained["asr"]  # the recipe trains with task.module.speaker_mean_dropout=0.1
    checkpoint = torch.load(run["best_checkpoint"], weights_only=True, map_location="cpu")
    assert len(checkpoint[LONE_MEAN_KEY]) == 80 + 9  # the mean log-mel, then the mean prosody (with pitch)
    model = load_model(run["best_checkpoint"])
    assert torch.equal(model.task.lone_mean, torch.tensor(checkpoint[LONE_MEAN_KEY]))
    path = read_rows(Path(run["run_dir"]) / "test_predictions.csv")[0]["path"]
    audio, rate = sf.read(path, dtype="float32")
    alone = model.transcribe(audio, rate, words=False)
    saved = model.transcribe(audio, rate, speaker_mean=np.array(checkpoint[LONE_MEAN_KEY]), words=False)
    own = model.transcribe(audio, rate, speaker_mean=model.speaker_mean([audio], rate), words=False)
    assert alone.emotion_probs == pytest.approx(saved.emotion_probs, abs=1e-6)
    assert alone.emotion_probs != pytest.approx(own.emotion_probs, abs=1e-6)
    # a model trained without it (no saved mean) uses the recording's own mean
    plain = load_model(trained["asr"]["best_checkpoint"])
    plain.task.lone_mean = None
    assert plain.transcribe(audio, rate, words=False).emotion_probs == pytest.approx(
        plain.transcribe(audio, rate, speaker_mean=plain.speaker_mean([audio], rate), words=False).emotion_probs,
        abs=1e-6)


@pytest.mark.parametrize("audio, named", [
    ("speech.wav", "audio is a path or text, not samples; read the file first"),
    (Path("speech.wav"), "audio is a path or text, not samples"),
    (np.array(["a", "b"]), "audio holds <U1 values, not numbers"),
    (np.zeros((2, 2, 2)), r"audio has shape \(2, 2, 2\)"),
    (np.zeros(0), "audio has no samples"),
    (np.array([0.0, np.nan]), "audio holds NaN or infinite samples"),
])
def test_audio_the_api_cannot_read_is_one_sentence(audio, named):
    from speechexp.inference.audio import to_mono

    with pytest.raises(SpeechexpError, match=named):
        to_mono(audio)
    stereo = to_mono(np.array([[0, 16384], [-32768, 0], [16384, 16384]], dtype=np.int16))  # [time, channels]
    np.testing.assert_allclose(stereo, [0.25, -0.5, 0.5])  # int16 scaled to [-1, 1), channels averaged


@pytest.mark.parametrize("sample_rate, named", [
    ("16k", r"sample_rate='16k' is not a number of samples per second; pass it in Hz, e.g. 16000."),
    (None, r"sample_rate=None is not a number"),
    (0, r"sample_rate must be positive, not 0."),
    ([16000], r"2 recordings but 1 sample rates"),
])
def test_a_sample_rate_the_api_cannot_use_is_one_sentence(sample_rate, named):
    from speechexp.inference.model import _as_list

    with pytest.raises(SpeechexpError, match=named):
        _as_list([np.zeros(4), np.zeros(4)], sample_rate)
    assert _as_list(np.zeros(4), 8000.0)[1:] == ([8000], True)


@pytest.mark.parametrize("arguments, named", [
    ({"ckpt_path": None}, r"^A checkpoint path is a string or a path, not None; pass the \.ckpt file"),
    ({"device": "gpu"}, r"^device='gpu' is not a torch device; pass 'cpu', 'cuda' or 'cuda:N'\.$"),
    ({"decoder": "nonsense"}, r"^decoder 'nonsense' is unknown; use one of beam, .*greedy\.$"),
    ({"decoder": {"beam_size": 8}}, r"^decoder=\{'beam_size': 8\} is neither a decoder's name nor its settings with a "
                                    r"_target_ \(as in conf/decoder/NAME\.yaml\); pass a name \(beam, .*\) or such"),
    ({"decoder": 5}, r"^decoder=5 is neither a decoder's name"),
])
def test_arguments_load_model_cannot_use_are_one_sentence(trained, arguments, named):
    from speechexp import load_model

    with pytest.raises(SpeechexpError, match=named):
        load_model(**{"ckpt_path": trained["asr"]["best_checkpoint"], **arguments})
