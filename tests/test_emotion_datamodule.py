"""EmotionSpeechDataModule: padding, lengths, buckets, label sets, bad audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speechexp.data.emotion_datamodule import EmotionSpeechDataModule
from speechexp.data.emotional_speech import EmotionalSpeechPreparer
from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic
from speechexp.runs.build import build_preparer, prepare_dataset

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
EMOTIONS = ["neutral", "happy", "sad", "angry"]


def make_dataset(folder: Path, n: int = 24, sample_rate: int = 16000) -> list[dict]:
    """Noise WAVs of varied lengths with known texts; split by index."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        samples = int(sample_rate * (0.2 + 0.05 * (i % 9)))
        path = folder / "wavs" / f"u{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(samples), sample_rate, subtype="PCM_16")
        rows.append({
            "path": f"wavs/u{i:02d}.wav", "speaker": f"s{i % 4}", "emotion": EMOTIONS[i % 4],
            "text": "Hello, World!" if i % 2 else "It's a dog" + " dog" * (i % 5),
            "duration": samples / sample_rate, "split": "train" if i < 16 else "val" if i < 20 else "test",
            "sample_rate": sample_rate,
        })
    write_csv_atomic(folder / "metadata.csv", rows, list(rows[0]))
    return rows


def test_batches_are_padded_with_correct_lengths(tmp_path):
    rows = make_dataset(tmp_path)
    dm = EmotionSpeechDataModule(tmp_path, batch_size=5, n_mels=32, emotions=EMOTIONS, bucket=False)
    dm.setup()
    assert (dm.num_emotions, dm.emotion_names, dm.vocab_size, dm.n_mels) == (4, EMOTIONS, 29, 32)
    seen = 0
    for batch in dm.train_dataloader():
        b = len(batch["path"])
        assert batch["features"].shape[0] == b and batch["features"].shape[2] == 32
        assert batch["features"].dtype == torch.float32 and batch["tokens"].dtype == torch.long
        assert batch["features"].shape[1] == batch["feature_lengths"].max()
        assert batch["tokens"].shape[1] == batch["token_lengths"].max()
        for j in range(b):
            row = rows[int(Path(batch["path"][j]).stem[1:])]
            samples = round(float(row["duration"]) * 16000)
            assert batch["feature_lengths"][j] == 1 + samples // 160
            assert torch.all(batch["features"][j, batch["feature_lengths"][j]:] == 0)
            text = dm.tokenizer.normalize(row["text"])
            assert batch["text"][j] == text and batch["token_lengths"][j] == len(text)
            assert dm.tokenizer.decode(batch["tokens"][j, : batch["token_lengths"][j]]) == text
            assert torch.all(batch["tokens"][j, batch["token_lengths"][j]:] == 0)
            assert dm.emotion_names[batch["emotion"][j]] == row["emotion"]
            assert Path(batch["path"][j]).is_absolute()
        seen += b
    assert seen == 16
    assert sum(len(b["path"]) for b in dm.val_dataloader()) == 4
    assert sum(len(b["path"]) for b in dm.test_dataloader()) == 4


def test_bucketed_loader_batches_similar_lengths(tmp_path):
    make_dataset(tmp_path, n=40)
    dm = EmotionSpeechDataModule(tmp_path, batch_size=4, n_mels=16, emotions=EMOTIONS, bucket_pool=50)
    lengths = [b["feature_lengths"] for b in dm.train_dataloader()]
    assert sum(len(x) for x in lengths) == len(dm.dataset("train"))
    assert max(int(x.max() - x.min()) for x in lengths) <= 10  # 0.05 s steps, sorted pools


def test_emotion_subset_and_default_order(tmp_path):
    make_dataset(tmp_path)
    dm = EmotionSpeechDataModule(tmp_path, emotions=["sad", "angry"], n_mels=16)
    assert dm.num_emotions == 2 and set(dm.metadata.emotion) == {"sad", "angry"}
    assert len(dm.dataset("train")) == 8
    assert EmotionSpeechDataModule(tmp_path, n_mels=16).emotion_names == EMOTIONS
    short = EmotionSpeechDataModule(tmp_path, n_mels=16, max_duration=0.3)
    assert short.metadata.duration.astype(float).max() <= 0.3


def test_resamples_other_rates(tmp_path):
    make_dataset(tmp_path, n=4, sample_rate=48000)
    dm = EmotionSpeechDataModule(tmp_path, n_mels=16, batch_size=4, bucket=False)
    batch = next(iter(dm.train_dataloader()))
    assert sorted(batch["feature_lengths"].tolist()) == [1 + int(16000 * (0.2 + 0.05 * i)) // 160 for i in range(4)]


def test_corrupt_audio_error_names_the_file(tmp_path):
    make_dataset(tmp_path, n=4)
    (tmp_path / "wavs" / "u02.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    dm = EmotionSpeechDataModule(tmp_path, n_mels=16, batch_size=2, bucket=False)
    with pytest.raises(SpeechexpError, match="u02.wav"):
        for _ in dm.train_dataloader():
            pass


def test_missing_metadata_or_train_rows(tmp_path):
    with pytest.raises(SpeechexpError, match="speechexp-prepare"):
        EmotionSpeechDataModule(tmp_path)
    make_dataset(tmp_path, n=4)
    dm = EmotionSpeechDataModule(tmp_path, emotions=["fearful"])
    with pytest.raises(SpeechexpError, match="no train rows"):
        dm.train_dataloader()


def test_clean_first_epochs_draw_only_clean_recordings_then_all(tmp_path):
    import pandas as pd  # noqa: PLC0415
    from lightning_fabric.utilities.data import _set_sampler_epoch  # noqa: PLC0415

    make_dataset(tmp_path, n=40)
    frame = pd.read_csv(tmp_path / "metadata.csv")
    frame["channel"] = ["noise snr=9.0" if i % 3 == 0 else "clean" for i in range(len(frame))]
    frame.to_csv(tmp_path / "metadata.csv", index=False)
    dm = EmotionSpeechDataModule(tmp_path, batch_size=2, n_mels=16, emotions=EMOTIONS, clean_epochs=2)
    train = dm.dataset("train").rows.reset_index(drop=True)
    clean = {str(tmp_path / p) for p, c in zip(train["path"], train["channel"]) if c == "clean"}
    loader = dm.train_dataloader()
    for epoch, expected in ((0, clean), (1, clean), (2, {str(tmp_path / p) for p in train["path"]})):
        _set_sampler_epoch(loader, epoch)  # as Lightning's fit loop does
        paths = [p for batch in loader for p in batch["path"]]
        assert set(paths) == expected and len(paths) == len(train)
    assert len(clean) < len(train)
    assert sum(len(b["path"]) for b in dm.val_dataloader()) == len(dm.dataset("val"))  # evaluation: every row
    with pytest.raises(SpeechexpError, match="bucket=true"):
        EmotionSpeechDataModule(tmp_path, n_mels=16, clean_epochs=1, bucket=False)
    make_dataset(tmp_path / "plain", n=8)
    with pytest.raises(SpeechexpError, match="'channel' column"):
        EmotionSpeechDataModule(tmp_path / "plain", n_mels=16, clean_epochs=1).train_dataloader()


def test_disk_feature_cache_is_used(tmp_path):
    make_dataset(tmp_path, n=4)
    dm = EmotionSpeechDataModule(tmp_path, n_mels=16, feature_cache="disk", bucket=False)
    first = next(iter(dm.train_dataloader()))["features"]
    assert len(list((tmp_path / "feature_cache").rglob("*.npy"))) == 4
    again = EmotionSpeechDataModule(tmp_path, n_mels=16, feature_cache="disk", bucket=False)
    assert torch.equal(next(iter(again.train_dataloader()))["features"], first)


def test_synthetic_corpus_through_yaml_datamodule(tmp_path):
    cfg = OmegaConf.create({"dataset": OmegaConf.load(CONF / "emotional_speech.yaml")})
    cfg.dataset.preparer.num_speakers = 6
    cfg.dataset.preparer.utterances_per_speaker = 5
    cfg.dataset.preparer.num_sentences = 15
    folder = prepare_dataset(cfg.dataset, tmp_path)
    assert isinstance(build_preparer(cfg.dataset), EmotionalSpeechPreparer)
    dm = instantiate(cfg.dataset.datamodule, dataset_dir=folder, batch_size=4, n_mels=40)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["features"].shape[0] == 4 and batch["features"].shape[2] == 40
    assert dm.emotion_names == ["neutral", "happy", "sad", "angry", "fearful"]
    assert batch["features"][0, : batch["feature_lengths"][0]].std() > 0.5
