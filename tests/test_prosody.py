"""Speaker-relative prosody: the six utterance measures, the speaker statistics that carry
their means, the model's ``prosody`` emotion source and the task that feeds it."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from speechexp.data.speaker_norm import relative_prosody, speaker_means, speaker_statistics, subtract_speaker_means
from speechexp.models.multitask import MultitaskSpeechModel
from speechexp.models.prosody import PROSODY_FEATURES, utterance_prosody

LOUDNESS, ENERGY_MEAN, ENERGY_STD, CENTROID, CENTROID_STD, LOUD_SHARE = range(len(PROSODY_FEATURES))


def speech(frames: int = 40, bins: int = 16, seed: int = 0) -> torch.Tensor:
    """Log-mel-like frames ``[frames, bins]``: power falling with frequency, varying over time."""
    gen = torch.Generator().manual_seed(seed)
    slope = -torch.linspace(0, 4, bins)
    return slope + torch.randn(frames, 1, generator=gen) + 0.3 * torch.randn(frames, bins, generator=gen)


def prosody_of(features: torch.Tensor) -> torch.Tensor:
    return utterance_prosody(features[None], torch.tensor([features.shape[0]]))[0]


def test_prosody_ignores_padding_and_gives_zeros_for_an_empty_utterance():
    a, b = speech(40), speech(25, seed=1)
    batch = torch.zeros(3, 40, 16)
    batch[0], batch[1, :25] = a, b
    out = utterance_prosody(batch, torch.tensor([40, 25, 0]))
    assert out.shape == (3, len(PROSODY_FEATURES))
    torch.testing.assert_close(out[0], prosody_of(a))
    torch.testing.assert_close(out[1], prosody_of(b))
    assert (out[2] == 0).all()


def test_prosody_measures_move_as_loudness_brightness_and_pauses_do():
    base = prosody_of(speech())
    gain = prosody_of(speech() + math.log(10.0))  # 10 dB louder in every bin
    torch.testing.assert_close(gain[[LOUDNESS, ENERGY_MEAN]], base[[LOUDNESS, ENERGY_MEAN]] + math.log(10.0))
    torch.testing.assert_close(gain[[ENERGY_STD, CENTROID, CENTROID_STD, LOUD_SHARE]],
                               base[[ENERGY_STD, CENTROID, CENTROID_STD, LOUD_SHARE]])
    brighter = prosody_of(speech() + torch.linspace(0, 3, 16))  # more power in the upper bins
    assert brighter[CENTROID] > base[CENTROID] + 0.05
    paused = speech()
    paused[::2] -= math.log(1000.0)  # every other frame 30 dB down: a pause
    assert prosody_of(paused)[LOUD_SHARE] < base[LOUD_SHARE] - 0.3
    assert prosody_of(paused)[ENERGY_STD] > base[ENERGY_STD] + 1.0


class _TwoSpeakers:
    """Shaped like an EmotionSpeechDataset split: rows with path and speaker, items with features."""

    def __init__(self):
        self.features = [speech(30, seed=0), speech(20, seed=1) + 1.0, speech(25, seed=2) - 2.0]
        self.rows = pd.DataFrame({"path": ["a1", "a2", "b1"], "speaker": ["a", "a", "b"]})

    def __getitem__(self, index):
        return {"features": self.features[index]}


def test_speaker_statistics_append_the_mean_prosody_and_make_it_relative():
    split = _TwoSpeakers()
    plain, with_prosody = speaker_means(split), speaker_means(split, prosody=True)
    assert plain["a1"].shape == (16,) and with_prosody["a1"].shape == (16 + len(PROSODY_FEATURES),)
    torch.testing.assert_close(with_prosody["a1"][:16], plain["a1"])  # the feature mean is unchanged
    mean_prosody = (prosody_of(split.features[0]) + prosody_of(split.features[1])) / 2
    torch.testing.assert_close(with_prosody["a2"][16:], mean_prosody)
    torch.testing.assert_close(speaker_statistics(split.features[:2], prosody=True), with_prosody["a1"])
    # an utterance's relative prosody: its own minus its speaker's; a speaker's sum to zero
    batch = torch.zeros(2, 30, 16)
    batch[0], batch[1, :20] = split.features[0], split.features[1]
    lengths, means = torch.tensor([30, 20]), [with_prosody["a1"], with_prosody["a2"]]
    relative = relative_prosody(batch, lengths, means)
    torch.testing.assert_close(relative.sum(0), torch.zeros(len(PROSODY_FEATURES)), atol=1e-5, rtol=0)
    torch.testing.assert_close(relative[0], prosody_of(split.features[0]) - mean_prosody)
    # the normalised features use only the feature part of the statistics
    torch.testing.assert_close(subtract_speaker_means(batch, lengths, means),
                               subtract_speaker_means(batch, lengths, [plain["a1"], plain["a2"]]))
    with pytest.raises(ValueError, match="do not match"):
        relative_prosody(batch, lengths, [plain["a1"], plain["a2"]])


def test_the_prosody_source_reaches_the_emotion_logits_and_is_required():
    torch.manual_seed(0)
    model = MultitaskSpeechModel(n_mels=16, vocab_size=7, num_emotions=3, conv_channels=4, units=4,
                                 emotion_sources=["encoder", "prosody"]).eval()
    assert model.reads_prosody and not MultitaskSpeechModel(n_mels=16, vocab_size=7, num_emotions=3).reads_prosody
    # the head's input: the encoder's mean and std (2 x 2 x 4 units), then the six prosody numbers
    assert model.source_widths == {"encoder": 16, "prosody": len(PROSODY_FEATURES)}
    assert model.emotion_head[0].in_features == 16 + len(PROSODY_FEATURES)
    features, lengths = torch.randn(2, 12, 16), torch.tensor([12, 7])
    prosody = torch.randn(2, len(PROSODY_FEATURES))
    log_probs, _, logits = model(features, lengths, prosody)
    assert logits.shape == (2, 3)
    moved = model(features, lengths, prosody + 3.0)
    assert torch.equal(moved[0], log_probs)  # the CTC head does not read prosody
    assert not torch.allclose(moved[2], logits)  # the emotion head does
    with pytest.raises(ValueError, match="reads prosody"):
        model(features, lengths)
    single = model.train()(features[:1], lengths[:1], prosody[:1])  # a batch of one trains too
    assert torch.isfinite(single[2]).all()


def test_the_task_gives_prosody_relative_to_the_speaker_and_as_it_is_without_speaker_norm():
    from speechexp.data.text import CharTokenizer
    from speechexp.tasks.asr_emotion import AsrEmotionTask

    def task(speaker_norm: bool) -> AsrEmotionTask:
        model = MultitaskSpeechModel(n_mels=16, vocab_size=5, num_emotions=2, conv_channels=4, units=4,
                                     emotion_sources=["encoder", "prosody"])
        return AsrEmotionTask(model, torch.nn.Identity(), torch.optim.Adam, CharTokenizer("abc "), ["a", "b"],
                              speaker_norm=speaker_norm)

    split = _TwoSpeakers()
    features = torch.zeros(2, 30, 16)
    features[0], features[1, :25] = split.features[0], split.features[2]
    batch = {"features": features, "feature_lengths": torch.tensor([30, 25]), "path": ["a1", "b1"]}
    plain = task(False)
    assert plain.reads_prosody
    same, absolute = plain.model_input(batch)
    assert torch.equal(same, features)
    torch.testing.assert_close(absolute, utterance_prosody(features, batch["feature_lengths"]))
    normed = task(True)
    means = speaker_means(split, prosody=True)
    normed.use_speaker_means(means)
    shifted, relative = normed.model_input(batch)
    torch.testing.assert_close(relative, absolute - torch.stack([means[p][16:] for p in batch["path"]]))
    torch.testing.assert_close(shifted[1, :25], features[1, :25] - means["b1"][:16])
    assert normed.speaker_statistics([split.features[2]]).shape == (16 + len(PROSODY_FEATURES),)
    assert task(False).model.reads_prosody and not MultitaskSpeechModel(16, 5, 2).reads_prosody


def test_inference_files_carry_each_speakers_mean_prosody(tmp_path):
    """speechexp-infer's loader: a speaker's statistics over its files are the features'
    mean followed by the mean prosody, and a lone file without a fallback gets its own."""
    import numpy as np
    import soundfile as sf

    from speechexp.data.features import LogMel
    from speechexp.inference.files import FeatureLoader

    rng = np.random.default_rng(0)
    files = []
    for i, scale in enumerate((0.05, 0.2, 0.1)):
        files.append(tmp_path / f"u{i}.wav")
        sf.write(files[-1], (scale * rng.standard_normal(4000)).astype(np.float32), 8000)
    logmel = LogMel(sample_rate=8000, n_mels=20, n_fft=256, hop_length=80)
    loader = FeatureLoader(logmel, True, speakers=["a", "a", "b"], prosody=True)
    loader.speaker_means(files)
    features = [torch.from_numpy(logmel(sf.read(f, dtype="float32")[0])) for f in files]
    torch.testing.assert_close(loader.means["a"], speaker_statistics(features[:2], prosody=True))
    assert loader.means["a"].shape == (20 + len(PROSODY_FEATURES),)
    item = loader(sf.read(files[2], dtype="float32")[0], 8000, 2)
    torch.testing.assert_close(item["speaker_mean"], loader.means["b"])
    alone = FeatureLoader(logmel, True, prosody=True)(sf.read(files[1], dtype="float32")[0], 8000, 1)
    torch.testing.assert_close(alone["speaker_mean"], speaker_statistics([features[1]], prosody=True))
