"""Pitch from the waveform: the frame tracker, the utterance's three pitch numbers, and the
prosody, speaker statistics, model, task and data that carry them (``dataset.datamodule.pitch``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechexp.data.features import LogMel
from speechexp.data.speaker_norm import relative_prosody, speaker_statistics
from speechexp.models.multitask import MultitaskSpeechModel
from speechexp.models.pitch import PITCH_FEATURES, VOICED, PitchTracker, utterance_pitch
from speechexp.models.prosody import PROSODY_FEATURES, prosody_size, utterance_prosody

RATE = 16000


def voice(f0: float, seconds: float = 0.5, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """A harmonic tone (1/h amplitudes up to 7 kHz) with a little white noise: ``[time]``."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 40) if f0 * h < 7000)
    return (0.3 * tone + noise * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("f0", [70.0, 110.0, 180.0, 260.0, 420.0])
def test_the_tracker_finds_the_f0_of_a_voice_and_calls_it_voiced(f0):
    tracker = PitchTracker(RATE, 160)
    track = tracker.track(voice(f0))
    assert track.shape == (LogMel(sample_rate=RATE).num_frames(len(voice(f0))), 2)  # the log-mel's frames
    inner = track[5:-5]  # away from the zero-padded ends
    assert abs(np.exp(np.median(inner[:, 0])) / f0 - 1) < 0.03
    assert (inner[:, 1] > 0.8).all()


def test_noise_and_silence_are_unvoiced():
    tracker = PitchTracker(RATE, 160)
    noise = tracker.track(0.1 * np.random.default_rng(1).standard_normal(RATE).astype(np.float32))
    assert (noise[:, 1] < VOICED).mean() > 0.95
    silence = tracker.track(np.zeros(RATE, dtype=np.float32))
    assert (silence[:, 1] < VOICED).all() and np.isfinite(silence).all()


def test_utterance_pitch_reads_level_range_and_voicing_of_the_valid_frames():
    # 10 frames: 6 voiced at 100 Hz and 200 Hz alternately, 4 unvoiced; then padding
    log_f0 = torch.tensor([math.log(100.0), math.log(200.0)] * 3 + [math.log(999.0)] * 4 + [math.log(50.0)] * 5)
    strength = torch.tensor([0.9] * 6 + [0.1] * 4 + [1.0] * 5)
    track = torch.stack([log_f0, strength], dim=-1)[None]
    out = utterance_pitch(track, torch.tensor([10]))
    assert out.shape == (1, len(PITCH_FEATURES))
    torch.testing.assert_close(out[0], torch.tensor([math.log(math.sqrt(2e4)), math.log(2.0) / 2, 0.6]))
    # fewer than two voiced frames, or none valid: zeros
    assert (utterance_pitch(track, torch.tensor([1])) == 0).all()
    assert (utterance_pitch(track, torch.tensor([0])) == 0).all()


def test_a_higher_and_livelier_voice_moves_the_pitch_numbers():
    tracker = PitchTracker(RATE, 160)

    def numbers(audio: np.ndarray) -> torch.Tensor:
        track = torch.from_numpy(tracker.track(audio))[None]
        return utterance_pitch(track, torch.tensor([track.shape[1]]))[0]

    low, high = numbers(voice(120.0)), numbers(voice(240.0))
    assert abs(float(high[0] - low[0]) - math.log(2.0)) < 0.05  # an octave up
    glide = np.concatenate([voice(120.0, 0.25), voice(200.0, 0.25)])
    assert numbers(glide)[1] > low[1] + 0.15  # a wider range
    half_silent = np.concatenate([voice(120.0, 0.25), np.zeros(RATE // 4, dtype=np.float32)])
    assert numbers(half_silent)[2] < low[2] - 0.3  # a smaller voiced share


def test_prosody_with_pitch_appends_three_numbers_and_the_statistics_carry_their_mean():
    logmel, tracker = LogMel(sample_rate=RATE), PitchTracker(RATE, 160)
    audio = [voice(120.0), voice(150.0, 0.4, seed=1), voice(300.0, 0.3, seed=2)]
    features = [torch.from_numpy(logmel(a)) for a in audio]
    pitch = [torch.from_numpy(tracker.track(a)) for a in audio]
    assert prosody_size(False) == len(PROSODY_FEATURES) and prosody_size(True) == len(PROSODY_FEATURES) + 3
    lengths = torch.tensor([len(f) for f in features])
    batch = torch.zeros(3, int(lengths.max()), 80)
    tracks = torch.zeros(3, int(lengths.max()), 2)
    for i, (f, p) in enumerate(zip(features, pitch)):
        batch[i, : len(f)], tracks[i, : len(p)] = f, p
    plain, with_pitch = utterance_prosody(batch, lengths), utterance_prosody(batch, lengths, tracks)
    assert with_pitch.shape == (3, 9)
    torch.testing.assert_close(with_pitch[:, :6], plain)
    torch.testing.assert_close(with_pitch[:, 6:], utterance_pitch(tracks, lengths))
    # one speaker's statistics: the mean log-mel, then the mean of the nine numbers
    stats = speaker_statistics(features[:2], prosody=True, pitch=pitch[:2])
    assert stats.shape == (80 + 9,)
    torch.testing.assert_close(stats[80:], with_pitch[:2].mean(0))
    relative = relative_prosody(batch[:2], lengths[:2], [stats, stats], tracks[:2])
    torch.testing.assert_close(relative.sum(0), torch.zeros(9), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="do not match"):  # statistics without the pitch means
        relative_prosody(batch[:2], lengths[:2], [stats[:86], stats[:86]], tracks[:2])


def test_a_pitch_model_reads_nine_prosody_numbers_and_the_task_asks_for_pitch_tracks():
    from speechexp.data.text import CharTokenizer
    from speechexp.errors import SpeechexpError
    from speechexp.tasks.asr_emotion import AsrEmotionTask

    model = MultitaskSpeechModel(n_mels=16, vocab_size=5, num_emotions=2, conv_channels=4, units=4,
                                 emotion_sources=["input", "prosody"], pitch=True)
    assert model.reads_pitch and model.source_widths["prosody"] == 9
    assert not MultitaskSpeechModel(16, 5, 2, emotion_sources=["input"], pitch=True).reads_pitch
    task = AsrEmotionTask(model, torch.nn.Identity(), torch.optim.Adam, CharTokenizer("abc "), ["a", "b"],
                          speaker_norm=False)
    features, lengths = torch.randn(2, 30, 16), torch.tensor([30, 20])
    batch = {"features": features, "feature_lengths": lengths, "path": ["a", "b"]}
    with pytest.raises(SpeechexpError, match="dataset.datamodule.pitch=true"):
        task.model_input(batch)
    batch["pitch"] = torch.stack([torch.full((30,), math.log(150.0)), torch.full((30,), 0.9)], dim=-1).expand(2, 30, 2)
    _, prosody = task.model_input(batch)
    assert prosody.shape == (2, 9)
    torch.testing.assert_close(prosody[:, 6:], torch.tensor([[math.log(150.0), 0.0, 1.0]] * 2), atol=2e-4, rtol=0)
    assert task.speaker_statistics([features[0]], [batch["pitch"][0]]).shape == (16 + 9,)
    _, _, logits = model(features, lengths, prosody)
    assert logits.shape == (2, 2)


def test_the_datamodule_carries_frame_aligned_pitch_and_tells_the_model(tmp_path):
    import pandas as pd
    import soundfile as sf

    from speechexp.data.emotion_datamodule import EmotionSpeechDataModule, collate

    rows = []
    for i, (f0, seconds) in enumerate([(110.0, 0.5), (220.0, 0.3), (160.0, 0.4)]):
        sf.write(tmp_path / f"u{i}.wav", voice(f0, seconds), RATE)
        rows.append({"path": f"u{i}.wav", "speaker": "s", "emotion": "neutral", "text": "a b",
                     "duration": seconds, "split": "train"})
    pd.DataFrame(rows).to_csv(tmp_path / "metadata.csv", index=False)
    plain = EmotionSpeechDataModule(tmp_path)
    assert "pitch" not in plain.dataset("train")[0] and "pitch" not in plain.model_kwargs()
    datamodule = EmotionSpeechDataModule(tmp_path, pitch=True)
    assert datamodule.model_kwargs()["pitch"] is True
    items = [datamodule.dataset("train")[i] for i in range(3)]
    for item, f0 in zip(items, (110.0, 220.0, 160.0)):
        assert item["pitch"].shape == (item["features"].shape[0], 2)
        assert abs(float(item["pitch"][5:-5, 0].median().exp()) / f0 - 1) < 0.03
    batch = collate(items)
    assert batch["pitch"].shape == (3, batch["features"].shape[1], 2)
    assert (batch["pitch"][1, items[1]["pitch"].shape[0]:] == 0).all()  # padding
