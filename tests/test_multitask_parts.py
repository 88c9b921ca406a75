"""Parts of the multitask recipe: SpecAugment, the exact padded BiLSTM, input
normalisation, CTC frame counts, step-wise LR schedules, the combined score and the
ablation presets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from speechexp.models.augment import SpecAugment
from speechexp.models.layers import ExactBiLSTM, LockedDropout, MaskedBatchNorm, reverse_within_lengths
from speechexp.models.multitask import MultitaskSpeechModel, cepstral_lifter
from speechexp.tasks.asr_emotion import combined_score
from speechexp.tasks.schedules import OneCycleSchedule, WarmupCosineSchedule
from tests.conftest import compose_config


# ---------------------------------------------------------------- SpecAugment
def test_spec_augment_masks_only_in_training_and_only_valid_frames():
    torch.manual_seed(0)
    augment = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=0.2, fill=0.0)
    features = torch.randn(6, 50, 40) + 10.0  # no cell is 0 before masking
    lengths = torch.tensor([50, 41, 30, 12, 1, 0])
    features[torch.arange(50)[None, :] >= lengths[:, None]] = 0.0  # padding is zero
    assert torch.equal(augment.eval()(features, lengths), features)
    out = augment.train()(features, lengths)
    assert out.shape == features.shape
    masked = (out == 0) & (features != 0)
    assert masked.any()
    for i, length in enumerate(lengths.tolist()):
        # time masks: whole frames inside the valid part, at most 2 * 20% of the length
        full_frames = masked[i].all(-1)
        assert full_frames.sum() <= 2 * int(0.2 * length)
        # frequency masks: whole bins over the valid frames, at most 2 * 8 bins
        if length:
            bins = masked[i, :length].all(0)
            assert bins.sum() <= 16
        assert not masked[i, length:].any()  # padding is never touched
    # the masked cells are bands: every masked cell lies on a masked frame or a masked bin
    for i, length in enumerate(lengths.tolist()):
        if length:
            rows, cols = masked[i, :length].all(-1), masked[i, :length].all(0)
            assert torch.equal(masked[i, :length], rows[:, None] | cols[None, :])


def test_spec_augment_without_masks_is_the_identity():
    features = torch.randn(2, 10, 8)
    assert torch.equal(SpecAugment(freq_masks=0, time_masks=0).train()(features, torch.tensor([10, 5])), features)
    with pytest.raises(ValueError):
        SpecAugment(time_width=1.5)


def test_frequency_warp_moves_a_formant_by_its_factor_and_keeps_padding():
    """A peak at one mel bin lands where its frequency times the factor falls (VTLP); factor 1
    is the identity; in training every utterance gets its own factor within the range."""
    import librosa

    augment = SpecAugment(freq_masks=0, time_masks=0, freq_warp=0.2, top_hz=8000.0)
    centres = torch.as_tensor(librosa.mel_frequencies(n_mels=82, fmin=0.0, fmax=8000.0)[1:-1], dtype=torch.float32)
    features = torch.zeros(3, 4, 80)
    features[:, :, 40] = 1.0  # one formant near 1.7 kHz
    warped = augment.warp(features, torch.tensor([1.0, 1.2, 0.85]))
    assert torch.allclose(warped[0], features[0])
    for row, factor in ((1, 1.2), (2, 0.85)):
        heard = float((warped[row, 0] * centres).sum() / warped[row, 0].sum())
        assert heard == pytest.approx(float(centres[40]) * factor, rel=0.01)
        assert torch.equal(warped[row, 0], warped[row, 3])  # one factor for the whole utterance
    torch.manual_seed(0)
    batch = torch.zeros(64, 5, 80)
    batch[:, :, 40] = 1.0
    lengths = torch.full((64,), 5)
    lengths[0] = 3
    out = augment.train()(batch, lengths)
    heard = (out[:, 0] * centres).sum(-1) / out[:, 0].sum(-1) / centres[40]
    assert heard.min() >= 0.79 and heard.max() <= 1.21 and heard.std() > 0.05  # factors spread over 0.8-1.2
    assert torch.equal(augment.eval()(batch, lengths), batch)
    with pytest.raises(ValueError):
        SpecAugment(freq_warp=1.0)


def test_formant_warp_moves_formants_by_different_ratios_and_keeps_the_bins_in_order():
    """Two peaks (near 0.5 and 3 kHz) move by ratios that differ between utterances; the ends
    stay where freq_warp puts them."""
    import librosa

    centres = torch.as_tensor(librosa.mel_frequencies(n_mels=82, fmin=0.0, fmax=8000.0)[1:-1], dtype=torch.float32)
    torch.manual_seed(0)
    augment = SpecAugment(freq_masks=0, time_masks=0, formant_warp=0.15).train()
    curves = augment.formant_curves(256, 80, torch.device("cpu"))
    assert curves.shape == (256, 80) and curves.abs().max() <= 3 * 0.15 and curves[:, [0, -1]].abs().max() < 1e-6
    features = torch.zeros(256, 2, 80)
    features[:, :, [12, 52]] = 1.0
    out = augment(features, torch.full((256,), 2))
    ratios = []
    for low, high in ((0, 30), (30, 80)):
        part = out[:, 0, low:high]
        ratios.append((part * centres[low:high]).sum(-1) / part.sum(-1) / centres[[12, 52][low > 0]])
    assert ratios[0].std() > 0.03 and ratios[1].std() > 0.03  # both formants move ...
    assert (ratios[0] - ratios[1]).abs().mean() > 0.03  # ... by different ratios
    # bins keep their order: a spectrum rising along the mel axis still rises after the
    # strongest warps allowed (steep enough to fold the axis back without a guard)
    ramp = torch.arange(80, dtype=torch.float32).expand(256, 2, 80)
    bent = SpecAugment(freq_masks=0, time_masks=0, formant_warp=0.45).train()(ramp, torch.full((256,), 2))
    assert bool((bent.diff(dim=-1) >= -1e-4).all()) and (bent - ramp).abs().max() > 1.0
    assert torch.equal(augment.eval()(features, torch.full((256,), 2)), features)
    with pytest.raises(ValueError, match="formant_warp"):
        SpecAugment(formant_warp=0.5)


def test_warp_drift_moves_a_formant_smoothly_within_an_utterance_and_keeps_its_ends():
    import librosa

    centres = torch.as_tensor(librosa.mel_frequencies(n_mels=82, fmin=0.0, fmax=8000.0)[1:-1], dtype=torch.float32)
    torch.manual_seed(0)
    augment = SpecAugment(freq_masks=0, time_masks=0, warp_drift=0.1).train()
    lengths = torch.full((64,), 60)
    lengths[1] = 40
    curves = augment.drift_curves(lengths, 60)
    assert curves.shape == (64, 60) and curves.abs().max() <= 4 * 0.1
    assert curves[:, 0].abs().max() < 1e-6 and curves[0, 59].abs() < 1e-5 and curves[1, 39:].abs().max() < 1e-5
    features = torch.zeros(64, 60, 80)
    features[:, :, 40] = 1.0  # one steady formant near 1.7 kHz
    out = augment(features, lengths)
    heard = (out * centres).sum(-1) / out.sum(-1) / centres[40]  # [batch, frames]: its ratio per frame
    assert heard[:, 0].sub(1).abs().max() < 0.01  # the ends keep their place ...
    assert heard.std(dim=1).mean() > 0.02  # ... while the middle wanders within each utterance
    assert heard.diff(dim=1).abs().max() < 0.05  # smoothly, from frame to frame
    assert torch.equal(out[1, 40:], features[1, 40:])  # padding as it was
    assert torch.equal(augment.eval()(features, lengths), features)
    with pytest.raises(ValueError, match="warp_drift"):
        SpecAugment(warp_drift=0.25)


def test_time_warp_moves_a_frame_where_it_is_asked_keeps_the_ends_and_the_padding():
    ramp = torch.arange(10.0).repeat(2, 1)[:, :, None].repeat(1, 1, 3)  # each frame holds its index
    lengths = torch.tensor([10, 6])
    warped = SpecAugment.time_warp_frames(ramp, lengths, torch.tensor([4.0, 2.0]), torch.tensor([2.0, 1.0]))
    assert warped[0, 6, 0] == 4 and warped[1, 3, 0] == 2  # the point lands where it moved
    assert warped[0, 0, 0] == 0 and warped[0, 9, 0] == 9 and warped[1, 5, 0] == 5  # the ends stay
    assert torch.equal(warped[1, 6:], ramp[1, 6:])  # padding untouched
    assert torch.allclose(warped[0, :7, 0], torch.arange(7.0) * 4 / 6)  # before: stretched evenly
    assert torch.all(warped[:, 1:, 0] >= warped[:, :-1, 0])  # time never runs backwards
    augment = SpecAugment(freq_masks=0, time_masks=0, time_warp=0.2).train()
    features = torch.randn(64, 50, 4)
    lengths = torch.randint(1, 51, (64,))
    out = augment(features, lengths)
    assert out.shape == features.shape and not torch.equal(out, features)
    for row, length in enumerate(lengths.tolist()):  # first and last valid frames and padding are kept
        assert torch.allclose(out[row, 0], features[row, 0]) and torch.allclose(out[row, length - 1], features[row, length - 1])
        assert torch.equal(out[row, length:], features[row, length:])
    assert torch.equal(augment.eval()(features, lengths), features)
    with pytest.raises(ValueError, match="time_warp"):
        SpecAugment(time_warp=0.5)


# ---------------------------------------------------------------- encoder parts
def test_reverse_within_lengths_keeps_padding_and_is_an_involution():
    x = torch.arange(2 * 5, dtype=torch.float).view(2, 5, 1)
    lengths = torch.tensor([5, 3])
    flipped = reverse_within_lengths(x, lengths)
    assert flipped[:, :, 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    assert torch.equal(reverse_within_lengths(flipped, lengths), x)


def test_exact_bilstm_equals_packed_bidirectional_lstm():
    torch.manual_seed(0)
    reference = nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)
    exact = ExactBiLSTM(6, 5, layers=2)
    for layer in range(2):
        for direction, module in (("", exact.forward_layers[layer]), ("_reverse", exact.backward_layers[layer])):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(module, f"{name}_l0").data.copy_(getattr(reference, f"{name}_l{layer}{direction}").data)
    x, lengths = torch.randn(3, 9, 6), torch.tensor([9, 4, 6])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=9)
    torch.testing.assert_close(exact(x, lengths), expected, atol=1e-6, rtol=1e-5)


def test_masked_batch_norm_ignores_padding_and_keeps_level_differences():
    norm = MaskedBatchNorm(3)
    x = torch.randn(2, 20, 3)
    lengths = torch.tensor([20, 8])
    garbage = x.clone()
    garbage[1, 8:] = 1e6
    out = norm.train()(garbage, lengths)
    torch.testing.assert_close(out, MaskedBatchNorm(3).train()(x, lengths) * (torch.arange(20)[None, :, None] < lengths[:, None, None]))
    assert (out[1, 8:] == 0).all()
    # a louder utterance stays louder after normalisation (unlike per-utterance norm)
    loud = torch.cat([torch.zeros(1, 10, 3), torch.ones(1, 10, 3) * 4]) + 0.1 * torch.randn(2, 10, 3)
    normed = MaskedBatchNorm(3).train()(loud, torch.tensor([10, 10]))
    assert (normed[1].mean() - normed[0].mean()) > 1.5
    norm.eval()
    torch.testing.assert_close(norm(x, lengths)[0], (x[0] - norm.running_mean) / (norm.running_var + 1e-5).sqrt())


@pytest.mark.parametrize("stride, upsample", [(1, 1), (2, 1), (3, 1), (4, 2), (3, 2)])
@pytest.mark.parametrize("input_norm, front_norm, freq_convs", [
    ("utterance", "none", 0), ("global", "none", 0), ("frame", "none", 0), ("utterance", "instance", 0),
    ("utterance", "instance", 3)])
def test_model_ctc_frames_and_padding_invariance(stride, upsample, input_norm, front_norm, freq_convs):
    torch.manual_seed(0)
    model = MultitaskSpeechModel(n_mels=20, vocab_size=11, num_emotions=4, conv_channels=8, units=6,
                                 stride=stride, ctc_upsample=upsample, input_norm=input_norm, front_norm=front_norm,
                                 freq_conv_channels=freq_convs,
                                 augment=SpecAugment(freq_width=3, time_width=0.1),
                                 emotion_sources=["encoder", "conv", "branch", "input", "ctc"], branch_channels=5)
    lengths = torch.tensor([37, 20, 9])
    features = torch.randn(3, 37, 20)
    model.train()(features, lengths)  # one training pass sets the running statistics
    model.eval()
    log_probs, out_lengths, logits = model(features, lengths)
    assert out_lengths.tolist() == [math.ceil(n / stride) * upsample for n in lengths.tolist()]
    assert log_probs.shape == (int(out_lengths.max()), 3, 11) and logits.shape == (3, 4)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]))
    # padding does not change an utterance's outputs (eval mode: SpecAugment is off)
    alone_log_probs, _, alone_logits = model(features[2:, :9], lengths[2:])
    torch.testing.assert_close(logits[2:], alone_logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(log_probs[: out_lengths[2], 2:], alone_log_probs, atol=1e-5, rtol=1e-4)


def test_input_lifter_keeps_the_spectral_envelope_and_drops_the_pitch_ripple():
    lifter = cepstral_lifter(80, 20)
    torch.testing.assert_close(lifter @ lifter, lifter, atol=1e-5, rtol=0)  # a projection
    torch.testing.assert_close(cepstral_lifter(80, 80), torch.eye(80), atol=1e-5, rtol=0)
    mel = torch.linspace(0, 1, 80)
    envelope = torch.exp(-(((mel - 0.3) / 0.1) ** 2))  # one formant-like bump
    ripple = torch.cos(2 * torch.pi * 30 * mel)  # harmonics: 30 periods over the mel axis
    assert (envelope @ lifter - envelope).norm() < 1e-3 * envelope.norm()
    assert (ripple @ lifter).norm() < 0.1 * ripple.norm()
    torch.manual_seed(0)
    model = MultitaskSpeechModel(n_mels=80, vocab_size=7, num_emotions=3, conv_channels=4, units=4,
                                 input_lifter=20, emotion_sources=["input"]).eval()
    lengths = torch.tensor([30])
    features = envelope.repeat(1, 30, 1) * torch.linspace(0.5, 2, 30)[None, :, None]
    rippled = features + 0.5 * ripple
    torch.testing.assert_close(model.normalise(rippled, lengths)[0], model.normalise(features, lengths)[0],
                               atol=0.05, rtol=0)  # the encoder does not see the ripple ...
    assert not torch.allclose(model.normalise(rippled, lengths)[1], model.normalise(features, lengths)[1],
                              atol=0.05)  # ... the emotion sources do
    assert "lifter" not in model.state_dict()  # rebuilt from input_lifter: older checkpoints still load
    with pytest.raises(ValueError, match="input_lifter must be 1 to n_mels"):
        MultitaskSpeechModel(n_mels=80, vocab_size=7, num_emotions=3, input_lifter=81)


def test_front_norm_instance_standardises_each_channel_over_the_valid_frames_only():
    model = MultitaskSpeechModel(n_mels=10, vocab_size=7, num_emotions=3, conv_channels=4, units=4,
                                 front_norm="instance")
    x = torch.randn(2, 12, 4) * 3 + 5
    x[1, 7:] = 100.0  # padding beyond length 7
    out = model.normalise_front(x, torch.tensor([12, 7]))
    for row, n in ((0, 12), (1, 7)):
        torch.testing.assert_close(out[row, :n].mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[row, :n].std(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    assert torch.equal(MultitaskSpeechModel(n_mels=10, vocab_size=7, num_emotions=3).normalise_front(x, torch.tensor([12, 7])), x)
    with pytest.raises(ValueError, match="front_norm must be one of"):
        MultitaskSpeechModel(n_mels=10, vocab_size=7, num_emotions=3, front_norm="batch")


def test_freq_convs_detect_a_pattern_alike_at_any_height_on_the_mel_axis():
    torch.manual_seed(0)
    model = MultitaskSpeechModel(n_mels=24, vocab_size=7, num_emotions=3, conv_channels=4, units=4,
                                 freq_conv_channels=5, emotion_sources=["input"]).eval()
    assert model.conv1.in_channels == 5 * 6  # ceil(24 / 4) bins of 5 channels
    lengths = torch.tensor([10])
    low = torch.zeros(1, 10, 24)
    low[0, 3:6, 4:6] = 1.0  # a short band: a formant or burst at one height
    high = low.roll(8, dims=2)  # the same pattern 8 bins (two output bins) higher
    out_low = model.spectro_temporal(low, lengths).view(1, 10, 5, 6)
    out_high = model.spectro_temporal(high, lengths).view(1, 10, 5, 6)
    torch.testing.assert_close(out_high[..., 3:5], out_low[..., 1:3])  # the same response, moved with it
    assert not torch.allclose(out_high, out_low)
    assert torch.equal(MultitaskSpeechModel(n_mels=24, vocab_size=7, num_emotions=3).spectro_temporal(low, lengths), low)
    with pytest.raises(ValueError, match="freq_conv_channels must be 0"):
        MultitaskSpeechModel(n_mels=24, vocab_size=7, num_emotions=3, freq_conv_channels=-1)


def test_locked_dropout_shares_one_mask_over_frames_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(64, 30, 16)
    out = LockedDropout(0.25).train()(x)
    dropped = out == 0
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # every frame: the same mask
    assert 0.15 < dropped[:, 0].float().mean() < 0.35
    assert torch.allclose(out[~dropped], torch.full_like(out[~dropped], 1 / 0.75))
    assert abs(out.mean().item() - 1.0) < 0.1
    assert torch.equal(LockedDropout(0.25).eval()(x), x)
    model = MultitaskSpeechModel(n_mels=10, vocab_size=7, num_emotions=3, conv_channels=4, units=4,
                                 dropout=0.3, locked_dropout=True)
    assert isinstance(model.encoder.dropout, LockedDropout) and isinstance(model.sequence_dropout, LockedDropout)
    with pytest.raises(ValueError, match="dropout must be in"):
        LockedDropout(1.0)


def test_model_emotion_sources_and_pooling_options():
    for sources, pooling in ((["encoder"], "attention"), (["conv", "input"], "stats"), (["ctc", "branch"], "stats"),
                             (["branch"], "attention")):
        model = MultitaskSpeechModel(n_mels=10, vocab_size=7, num_emotions=3, conv_channels=4, units=4,
                                     emotion_sources=sources, emotion_pooling=pooling)
        assert model(torch.randn(2, 12, 10), torch.tensor([12, 7]))[2].shape == (2, 3)
    with pytest.raises(ValueError):
        MultitaskSpeechModel(n_mels=10, vocab_size=7, num_emotions=3, emotion_sources=["pitch"])


# ---------------------------------------------------------------- schedules, score
def test_step_schedules_warm_up_then_anneal():
    def rates(make, steps=100):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
        scheduler = make(optimizer)
        out = []
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    one_cycle = rates(lambda o: OneCycleSchedule(o, max_lr=0.01, total_steps=100, pct_start=0.3))
    assert one_cycle[0] == pytest.approx(0.01 / 25) and max(one_cycle) == pytest.approx(0.01, rel=1e-3)
    assert one_cycle.index(max(one_cycle)) in (29, 30) and one_cycle[-1] < 1e-5
    warm = rates(lambda o: WarmupCosineSchedule(o, total_steps=100, warmup_fraction=0.1, final_factor=0.01))
    assert warm[0] == pytest.approx(0.001) and warm[9] == pytest.approx(0.01)
    assert warm[-1] == pytest.approx(0.0001, rel=0.05) and warm == sorted(warm[:10]) + warm[10:]
    assert OneCycleSchedule.interval == WarmupCosineSchedule.interval == "step"
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosineSchedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))


def test_combined_score_counts_cer_and_uar_alike():
    assert float(combined_score(0.0, 1.0)) == pytest.approx(1.0)
    assert float(combined_score(0.1, 0.9)) == pytest.approx(0.9)
    assert float(combined_score(torch.tensor(1.0), torch.tensor(0.2))) == pytest.approx(0.1)
    assert float(combined_score(0.2, 1.0)) == pytest.approx(float(combined_score(0.0, 0.8)))


# ---------------------------------------------------------------- presets
@pytest.mark.parametrize("ablation, weights", [("joint", (1.0, 1.0)), ("asr_only", (1.0, 0.0)),
                                               ("emotion_only", (0.0, 1.0))])
def test_ablation_options_set_the_loss_weights(ablation, weights, tmp_path):
    cfg = compose_config("train", ["experiment=asr_emotion", f"+ablation={ablation}"], tmp_path)
    assert (cfg.task.module.asr_weight, cfg.task.module.emotion_weight) == weights


@pytest.mark.parametrize("preset, params", [
    ("asr_emotion_ablation", {"+ablation": "joint,asr_only,emotion_only", "seed": "0,1,2"}),
    ("asr_emotion_grid", {"model.units": "96,128,192", "optimizer.lr": "0.001,0.002,0.004"}),
])
def test_asr_emotion_sweep_presets(preset, params, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from speechexp.config import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hparams_search={preset}"], return_hydra_config=True)
    assert cfg.task.name == "asr_emotion"  # the preset brings its experiment
    assert dict(cfg.hydra.sweeper.params) == params
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"


# ---------------------------------------------------------------- speaker normalisation
class _FakeSplit:
    """Two speakers' utterances, shaped like EmotionSpeechDataset (rows + features)."""

    def __init__(self):
        import pandas as pd

        self.features = [torch.full((4, 2), 1.0), torch.full((2, 2), 4.0), torch.full((3, 2), -2.0)]
        self.rows = pd.DataFrame({"path": ["a1", "a2", "b1"], "speaker": ["a", "a", "b"]})

    def __getitem__(self, index):
        return {"features": self.features[index]}


def test_speaker_means_average_every_frame_of_a_speaker():
    from speechexp.data.speaker_norm import speaker_means, subtract_speaker_means

    means = speaker_means(_FakeSplit())
    torch.testing.assert_close(means["a1"], torch.tensor([2.0, 2.0]))  # (4 * 1 + 2 * 4) / 6 frames
    assert means["a1"] is means["a2"]
    torch.testing.assert_close(means["b1"], torch.tensor([-2.0, -2.0]))
    batch = torch.ones(2, 3, 2)
    batch[1, 2:] = 0.0  # padding
    out = subtract_speaker_means(batch, torch.tensor([3, 2]), [means["a1"], means["b1"]])
    torch.testing.assert_close(out[0], torch.full((3, 2), -1.0))
    torch.testing.assert_close(out[1, :2], torch.full((2, 2), 3.0))
    assert (out[1, 2:] == 0).all()
