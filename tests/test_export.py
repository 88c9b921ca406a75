"""speechexp-export: ONNX (run with onnxruntime) and TorchScript files equal PyTorch on the
test split of both experiments."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from speechexp.errors import SpeechexpError
from speechexp.inference.audio import read_audio, resample
from speechexp.inference.export import export_model, run_exported
from speechexp.inference.model import load_model
from speechexp.models.prosody import prosody_size, utterance_prosody
from speechexp.train import train
from tests.conftest import compose_config, run_cli

pytest.importorskip("onnxruntime")

TINY = ("trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "logger=csv", "trainer.enable_progress_bar=false")
SMALL_CORPUS = ("dataset.preparer.num_speakers=12", "dataset.preparer.utterances_per_speaker=6",
                "dataset.preparer.num_sentences=60")
TOLERANCE = 1e-4  # max abs difference of sources and log-probs the issue asks for


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """``{kind: (last.ckpt, dataset dir)}`` of one tiny training run of each experiment."""
    root = tmp_path_factory.mktemp("export")
    runs = {"separation": ("experiment=separation",),
            # the emotion head also reads speaker-relative prosody with pitch: the graph computes
            # both (its own STFTs, log-mel and pitch tracking) from the waveform; the encoder reads
            # the cepstrally smoothed features through 2-D and instance-normalised convolutions
            "asr_emotion": ("experiment=asr_emotion", *SMALL_CORPUS, "task.module.speaker_norm=true",
                            "model.emotion_sources=[encoder,conv,input,ctc,prosody]", "dataset.datamodule.pitch=true",
                            "model.input_lifter=20", "model.front_norm=instance", "model.freq_conv_channels=3")}
    found = {}
    for kind, overrides in runs.items():
        run_dir = root / kind
        run_dir.mkdir()
        train(compose_config("train", [f"paths.data_dir={root / 'data'}", *overrides, *TINY], run_dir))
        found[kind] = (run_dir / "checkpoints" / "last.ckpt", Path(json.loads((run_dir / "results.json").read_text())
                                                                    ["dataset_dir"]))
        assert found[kind][0].is_file()
    return found


def split_rows(dataset_dir: Path) -> list[dict]:
    with open(dataset_dir / "metadata.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["split"] == "test"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_separation_export_equals_pytorch_on_the_test_split(checkpoints, tmp_path, fmt):
    ckpt, dataset_dir = checkpoints["separation"]
    model = load_model(ckpt)
    path = export_model(model, tmp_path / f"sep.{fmt}", fmt)
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["kind"] == "separation" and meta["sample_rate"] == model.sample_rate == 8000
    mixtures = np.stack([read_audio(dataset_dir / row["mixture"])[0] for row in split_rows(dataset_dir)])
    for batch in (mixtures, mixtures[:1, : mixtures.shape[1] // 3]):  # dynamic batch and time axes
        got = run_exported(path, {"mixture": batch})[0]
        with torch.no_grad():
            want = model.task.model(torch.from_numpy(batch)).numpy()
        assert got.shape == want.shape == (batch.shape[0], 2, batch.shape[1])
        assert np.abs(got - want).max() < TOLERANCE


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_asr_emotion_export_equals_pytorch_on_the_test_split(checkpoints, tmp_path, fmt):
    ckpt, dataset_dir = checkpoints["asr_emotion"]
    model = load_model(ckpt)
    path = export_model(model, tmp_path / f"asr.{fmt}", fmt)
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["inputs"] == ["audio", "lengths", "speaker_mean"] and meta["labels"][0] == "<blank>"
    n_mels = meta["n_mels"]
    assert meta["speaker_mean_size"] == model.speaker_mean_size == n_mels + prosody_size(pitch=True) == n_mels + 9
    rows = split_rows(dataset_dir)
    recordings = [read_audio(dataset_dir / row["path"]) for row in rows]
    audio = [resample(a, rate, model.sample_rate) for a, rate in recordings]
    speakers = [row["speaker"] for row in rows]
    means = {s: model.speaker_mean([a for a, other in zip(audio, speakers) if other == s], model.sample_rate)
             for s in set(speakers)}
    expected = model.transcribe(audio, model.sample_rate, speaker_mean=[means[s] for s in speakers], words=False)
    lengths = np.array([len(a) for a in audio], dtype=np.int64)
    padded = np.zeros((len(audio), lengths.max()), dtype=np.float32)
    for i, a in enumerate(audio):
        padded[i, : len(a)] = a
    inputs = {"audio": padded, "lengths": lengths, "speaker_mean": np.stack([means[s] for s in speakers])}
    log_probs, out_lengths, emotion_logits, mean_features = run_exported(path, inputs)
    # PyTorch on the same features, one utterance at a time
    for i, (a, speaker) in enumerate(zip(audio, speakers)):
        raw, pitch = (torch.from_numpy(x)[None] for x in model.front(a, model.sample_rate))
        length = torch.tensor([raw.shape[1]])
        assert pitch.shape == (1, raw.shape[1], 2)
        features, prosody = model.task.normalised(raw, length, [torch.from_numpy(means[speaker])], pitch)
        with torch.no_grad():
            want_lp, want_len, want_logits = model.task.model(features, length, prosody)
        frames = int(want_len[0])
        assert int(out_lengths[i]) == frames
        assert np.abs(log_probs[:frames, i] - want_lp[:, 0].numpy()).max() < TOLERANCE
        assert np.abs(emotion_logits[i] - want_logits[0].numpy()).max() < TOLERANCE
        assert np.abs(mean_features[i, :n_mels] - raw[0].numpy().mean(0)).max() < 1e-3
        assert np.abs(mean_features[i, n_mels:] - utterance_prosody(raw, length, pitch)[0].numpy()).max() < 1e-3
        # greedy decoding of the exported log-probs: the API's transcript, the API's emotion
        best = log_probs[:frames, i].argmax(-1)
        collapsed = [c for t, c in enumerate(best) if c != 0 and (t == 0 or c != best[t - 1])]
        assert "".join(meta["labels"][c] for c in collapsed) == expected[i].text
        assert meta["emotions"][int(emotion_logits[i].argmax())] == expected[i].emotion


def test_cli_writes_the_model_and_its_check(checkpoints, tmp_path):
    """Also: the staging folder of an export killed before its clean-up (its process gone) is
    removed by the next export into that folder; a running export's is left alone."""
    ckpt, _ = checkpoints["separation"]
    ended = subprocess.Popen(["true"])  # a process that has ended: its pid names no process now
    ended.wait()
    killed = tmp_path / "out" / f".export-{ended.pid}-k1"
    killed.mkdir(parents=True)
    (killed / "model.onnx").write_bytes(b"half")
    running = tmp_path / "out" / f".export-{os.getpid()}-r1"
    running.mkdir()
    done = run_cli("export", f"ckpt_path={ckpt}", "format=onnx", f"hydra.run.dir={tmp_path / 'out'}")
    assert done.returncode == 0, done.stderr
    assert not killed.exists() and running.is_dir()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["status"] == "completed" and results["export/max_abs_diff/sources"] < TOLERANCE
    assert (tmp_path / "out" / "model.onnx").stat().st_size > 10_000
    refused = run_cli("export", f"ckpt_path={ckpt}", "format=tflite", f"hydra.run.dir={tmp_path / 'bad'}")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("Error: format=tflite is not one of")
    missing = run_cli("export", f"ckpt_path={tmp_path / 'none.ckpt'}", f"hydra.run.dir={tmp_path / 'bad'}")
    assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1].startswith("Error: Checkpoint ")
    assert not list((tmp_path / "bad").glob("model*")) and not (tmp_path / "bad" / "results.json").exists()


def test_output_may_name_a_folder_and_a_file_that_fails_its_check_replaces_nothing(checkpoints, tmp_path):
    """``output=`` a folder (existing, or new with a trailing slash) holds ``model.<suffix>``; a
    name without the format's suffix is checked as its format; a check above ``tolerance``
    leaves an earlier export at that path as it was, and no staging folder behind."""
    from speechexp.export import export

    ckpt, _ = checkpoints["separation"]
    (tmp_path / "shipped").mkdir()

    def export_to(output: str, *overrides: str, run: str) -> dict:
        return export(compose_config("export", [f"ckpt_path={ckpt}", f"output={output}", *overrides],
                                     tmp_path / run))

    export_to(str(tmp_path / "shipped"), "format=torchscript", run="a")
    export_to(f"{tmp_path / 'new'}/", "format=torchscript", run="b")
    metrics = export_to(str(tmp_path / "plain"), "format=onnx", run="c")  # onnxruntime reads it, by its format
    assert metrics["export/max_abs_diff/sources"] < TOLERANCE
    for file in (tmp_path / "shipped" / "model.pt", tmp_path / "new" / "model.pt", tmp_path / "plain"):
        assert file.stat().st_size > 10_000 and json.loads(file.with_name(file.name + ".json").read_text())["format"]
    before = (tmp_path / "shipped" / "model.pt").read_bytes()
    with pytest.raises(SpeechexpError) as refused:
        export_to(str(tmp_path / "shipped" / "model.pt"), "format=onnx", "tolerance=0", run="d")
    assert f"more than tolerance=0.0, so {tmp_path}/shipped/model.pt was not written" in str(refused.value)
    assert (tmp_path / "shipped" / "model.pt").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == ["model.pt", "model.pt.json"]
    with pytest.raises(SpeechexpError, match=r"tolerance=-1.0 is out of range: tolerance must be 0 or more"):
        export_to(str(tmp_path / "x.pt"), "tolerance=-1", run="e")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SpeechexpError, match=r"output=.*a_file/model.pt cannot be written \(.*\); pass output=PATH"):
        export_to(str(tmp_path / "a_file" / "model.pt"), run="f")
    assert not (tmp_path / "e").exists() and not (tmp_path / "f").exists()


def test_the_readme_onnxruntime_example_prints_what_the_api_says(checkpoints, tmp_path):
    """The README's example (onnxruntime and numpy alone, a lone recording) on an exported
    model: the same transcript and emotion as ``load_model(...).transcribe``."""
    import re
    import shutil
    import sys

    from tests.conftest import REPO, cli_env

    example = re.search(r"```python\n(import json, numpy as np, onnxruntime.*?)```", (REPO / "README.md").read_text(),
                        re.S).group(1)
    ckpt, dataset_dir = checkpoints["asr_emotion"]
    model = load_model(ckpt)
    assert model.task.lone_mean is not None  # the recipe trains the fallback for lone recordings
    export_model(model, tmp_path / "model.onnx", "onnx")
    wav = Path(dataset_dir) / split_rows(dataset_dir)[0]["path"]
    shutil.copy(wav, tmp_path / "utterance.wav")
    (tmp_path / "example.py").write_text(example)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=cli_env())
    assert done.returncode == 0, done.stderr[-2000:]
    audio, rate = read_audio(wav)
    expected = model.transcribe(audio, rate, words=False)
    assert done.stdout.strip() == f"{expected.text} {expected.emotion}".strip()
