"""The voice adversary: a gradient reversal and a per-frame voice classifier that removes
what tells voices apart from the encoder's frames."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError
from speechexp.models.adversary import VoiceAdversary, index_voices, reverse_gradient
from speechexp.models.multitask import MultitaskSpeechModel
from speechexp.tasks.asr_emotion import AsrEmotionTask
from tests.conftest import run_script


def test_the_reversal_is_the_identity_forward_and_scales_the_gradient_by_minus_scale():
    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    weights = torch.randn(3, 4)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -0.25 * weights)


def test_the_adversary_scores_valid_frames_of_known_voices_only():
    torch.manual_seed(0)
    adversary = VoiceAdversary(dim=6, classes=3, units=8)
    hidden = torch.randn(3, 5, 6)
    lengths, voices = torch.tensor([5, 2, 4]), torch.tensor([2, 0, -1])  # the third voice is unknown
    loss, accuracy = adversary(hidden, lengths, voices, scale=1.0)
    logits = adversary.classifier(hidden)
    frames = torch.cat([logits[0, :5], logits[1, :2]])  # padding and the unknown voice left out
    targets = torch.tensor([2] * 5 + [0] * 2)
    assert loss.item() == pytest.approx(F.cross_entropy(frames, targets).item(), abs=1e-6)
    assert accuracy.item() == pytest.approx((frames.argmax(-1) == targets).float().mean().item())
    nothing, _ = adversary(hidden, lengths, torch.tensor([-1, -1, -1]), scale=1.0)
    assert nothing.item() == 0.0


def test_an_utterance_adversary_reads_each_utterance_s_frame_statistics_over_its_length():
    torch.manual_seed(0)
    adversary = VoiceAdversary(dim=6, classes=3, units=8, pooling="utterance")
    hidden = torch.randn(3, 5, 6)
    lengths, voices = torch.tensor([5, 2, 4]), torch.tensor([2, 0, -1])
    loss, accuracy = adversary(hidden, lengths, voices, scale=1.0)
    statistics = torch.stack([torch.cat([hidden[i, :n].mean(0), hidden[i, :n].std(0, unbiased=False)])
                              for i, n in enumerate([5, 2])])
    logits = adversary.classifier(statistics)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([2, 0])).item(), abs=1e-4)
    assert accuracy.item() == pytest.approx((logits.argmax(-1) == torch.tensor([2, 0])).float().mean().item())
    hidden[1, 2:] = 100.0  # padding is not read
    assert adversary(hidden, lengths, voices, scale=1.0)[0].item() == pytest.approx(loss.item(), abs=1e-5)
    with pytest.raises(SpeechexpError, match="voice_adversary_pooling must be one of"):
        VoiceAdversary(dim=6, classes=3, pooling="speaker")


def fooled_adversary(scale: float, steps: int = 150) -> tuple[float, float, float]:
    """Frames carry words (4 dimensions) and the voice (a fifth, one value per voice). An
    adversary first learns to name the voice from an encoder's frames (one linear layer); then,
    the adversary held fixed, the encoder learns the words while the adversary's loss comes back
    through a reversal of ``scale``. Returns the adversary's loss and voice accuracy, and the
    word accuracy."""
    generator = torch.Generator().manual_seed(0)
    voices = torch.randint(0, 2, (64,), generator=generator)
    words = torch.randint(0, 4, (64, 10), generator=generator)
    frames = torch.cat([F.one_hot(words, 4).float(), (2.0 * voices - 1)[:, None, None].expand(-1, 10, 1)], -1)
    frames = frames + 0.1 * torch.randn(frames.shape, generator=generator)
    lengths = torch.full((64,), 10)
    torch.manual_seed(0)
    encoder, word_head = torch.nn.Linear(5, 8), torch.nn.Linear(8, 4)
    adversary = VoiceAdversary(dim=8, classes=2, units=16)
    adversary_optimiser = torch.optim.Adam(adversary.parameters(), lr=0.03)
    for _ in range(100):
        loss = adversary(encoder(frames).detach(), lengths, voices, 0.0)[0]
        adversary_optimiser.zero_grad()
        loss.backward()
        adversary_optimiser.step()
    assert adversary(encoder(frames), lengths, voices, 0.0)[1].item() > 0.95  # it names the voice
    adversary.requires_grad_(False)
    optimiser = torch.optim.Adam([*encoder.parameters(), *word_head.parameters()], lr=0.03)
    for _ in range(steps):
        hidden = encoder(frames)
        loss = F.cross_entropy(word_head(hidden).reshape(-1, 4), words.reshape(-1))
        loss = loss + adversary(hidden, lengths, voices, scale)[0]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    hidden = encoder(frames)
    word_accuracy = (word_head(hidden).argmax(-1) == words).float().mean().item()
    loss, accuracy = adversary(hidden, lengths, voices, 0.0)
    return loss.item(), accuracy.item(), word_accuracy


def test_through_the_reversal_the_encoder_learns_to_fool_the_adversary_and_keeps_the_words():
    """The reversal turns the adversary's loss into one the encoder maximises: its frames
    stop telling the (fixed) adversary the voice, and still say the words."""
    named_loss, _, words = fooled_adversary(scale=0.0)
    fooled_loss, fooled_accuracy, words_fooled = fooled_adversary(scale=0.3)
    assert fooled_loss > 10 * named_loss, (fooled_loss, named_loss)
    assert fooled_accuracy < 0.5  # chance is 0.5: the adversary is now misled
    assert words > 0.95 and words_fooled > 0.95


def test_the_task_builds_an_adversary_on_the_encoder_frames_only_when_asked():
    model = MultitaskSpeechModel(n_mels=40, vocab_size=29, num_emotions=5, units=16, conv_channels=16)
    common = {"model": model, "loss": torch.nn.CTCLoss(), "optimizer": torch.optim.Adam,
              "tokenizer": CharTokenizer(), "emotion_names": ["angry", "sad"]}
    assert AsrEmotionTask(**common).voice_adversary is None
    task = AsrEmotionTask(**common, voice_adversary_weight=0.5, voice_adversary_classes=4)
    assert task.voice_adversary.classifier[0].in_features == 32 and task.voice_adversary.classifier[-1].out_features == 4
    task.train()
    model(torch.randn(2, 20, 40), torch.tensor([20, 12]))
    assert task._encoder_frames is None  # before fitting starts, nothing is kept
    task.on_fit_start()
    model(torch.randn(2, 20, 40), torch.tensor([20, 12]))
    assert task._encoder_frames.shape == (2, 10, 32)  # stride 2, both directions
    task.eval()
    model(torch.randn(2, 20, 40), torch.tensor([20, 12]))
    assert task._encoder_frames is None  # nothing kept outside training
    task.train()
    task.on_fit_end()
    model(torch.randn(2, 20, 40), torch.tensor([20, 12]))
    assert task._encoder_frames is None and not model.encoder._forward_hooks  # the hook is gone


def test_each_training_voice_gets_a_class_and_too_few_classes_are_refused_with_the_fix():
    assert index_voices(["piper:joe", "espeak", "", "espeak", "flite:awb"], 4) == {
        "espeak": 0, "flite:awb": 1, "piper:joe": 2}
    with pytest.raises(SpeechexpError, match=r"training split 3 voices; set task.module.voice_adversary_classes=3\."):
        index_voices(["piper:joe", "espeak", "flite:awb"], 2)
    with pytest.raises(SpeechexpError, match="voice_adversary_classes must be at least 1"):
        VoiceAdversary(dim=4, classes=0)


def test_a_run_with_the_adversary_logs_it_every_epoch_and_its_checkpoint_evaluates(compose_train, tmp_path):
    """The espeak corpus has one voice (``source`` espeak), which no encoder can hide: the
    adversary (16 classes) learns to name it, and the saved weights, the adversary's included, load."""
    import csv
    import json

    from speechexp import load_model
    from speechexp.train import train

    cfg = compose_train("experiment=asr_emotion", "dataset.preparer.num_speakers=20",
                        "dataset.preparer.utterances_per_speaker=6", "dataset.preparer.num_sentences=60",
                        "task.module.voice_adversary_weight=0.5", "task.module.voice_adversary_pooling=utterance",
                        "trainer.max_epochs=2", "logger=csv", "trainer.enable_progress_bar=false")
    train(cfg)
    history = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv", newline="")))
    accuracy = [float(row["train/voice_accuracy"]) for row in history if row.get("train/voice_accuracy")]
    losses = [float(row["train/voice_ce"]) for row in history if row.get("train/voice_ce")]
    assert len(accuracy) == len(losses) == 2 and accuracy[-1] == 1.0, (accuracy, losses)
    assert losses[1] < 0.5 * losses[0], losses
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    model = load_model(results["best_checkpoint"])
    assert model.task.voice_adversary.pooling == "utterance"
    probed = run_script("scripts/probe_voices.py", results["best_checkpoint"], "--data-dir", str(tmp_path / "data"),
                        "--batches", "6")
    assert probed.returncode == 0, probed.stderr[-2000:]
    row = probed.stdout.strip().splitlines()[-1].split("|")[1:-1]  # one voice: every probe names it
    assert row[0].strip() == results["best_checkpoint"] and [c.strip() for c in row[1:]] == [
        "1", "1.000", "1.000", "1.000", "1.000"]
