"""The multitask ASR + emotion model and task."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from speechexp.models.multitask import MultitaskSpeechModel
from speechexp.train import train

SMALL_CORPUS = ("dataset.preparer.num_speakers=30", "dataset.preparer.utterances_per_speaker=10",
                "dataset.preparer.num_sentences=120")


@pytest.mark.parametrize("stride", [1, 2])
def test_model_shapes_and_lengths(stride):
    model = MultitaskSpeechModel(n_mels=40, vocab_size=29, num_emotions=5, units=16, conv_channels=16,
                                 stride=stride)
    lengths = torch.tensor([101, 60, 7])
    log_probs, out_lengths, logits = model(torch.randn(3, 101, 40), lengths)
    frames = log_probs.shape[0]
    assert log_probs.shape == (frames, 3, 29) and logits.shape == (3, 5)
    assert out_lengths.tolist() == [frames, *model.output_lengths(lengths[1:]).tolist()]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(frames, 3), atol=1e-5)
    # padding beyond a length does not change that utterance's emotion logits
    padded = torch.randn(3, 101, 40)
    trimmed_logits = model.eval()(padded[2:, :7], lengths[2:])[2]
    torch.testing.assert_close(model(padded, lengths)[2][2:], trimmed_logits, atol=1e-5, rtol=1e-4)


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_fast_dev_run_exports_and_custom_ctc_trains_like_the_builtin(compose_train, tmp_path):
    results = {}
    for loss in ("ctc_custom", "ctc_builtin"):
        cfg = compose_train("experiment=asr_emotion", f"loss={loss}", "debug=fdr", *SMALL_CORPUS,
                            "trainer.enable_progress_bar=false", run_name=loss)
        train(cfg)
        results[loss] = read_results(tmp_path / loss)
        assert results[loss]["status"] == "completed"
    custom, builtin = results["ctc_custom"], results["ctc_builtin"]
    for key in ("test/loss", "test/ctc", "test/emotion_ce", "test/cer", "test/wer", "test/accuracy", "test/uar"):
        assert isinstance(custom[key], float), key
    # same seed, same data, same gradients: one step with either loss ends in the same model
    for key in ("train/ctc", "test/ctc", "test/emotion_ce"):
        assert custom[key] == pytest.approx(builtin[key], rel=1e-4), key
    run_dir = tmp_path / "ctc_custom"
    with open(run_dir / "test_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"path", "text", "hypothesis", "cer", "emotion", "predicted_emotion"} <= set(rows[0])
    assert (run_dir / "figures" / "emotion_confusion.png").stat().st_size > 5_000
    assert (run_dir / "figures" / "ctc_alignment.png").stat().st_size > 5_000


@pytest.mark.slow
def test_multitask_model_recognises_emotion_of_unseen_speakers(compose_train, tmp_path):
    """Sad vs angry on voices and sentences never seen in training: chance is 0.5."""
    cfg = compose_train("experiment=asr_emotion", "dataset.preparer.emotions=[sad,angry]",
                        "dataset.preparer.num_speakers=40", "dataset.preparer.utterances_per_speaker=6",
                        "dataset.preparer.num_sentences=120", "optimizer.lr=0.003", "logger=csv",
                        "trainer.max_epochs=8", "trainer.enable_progress_bar=false")
    train(cfg)
    results = read_results(tmp_path / "run")
    assert results["test/accuracy"] >= 0.5 + 0.25, results
    history = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv", newline="")))
    train_ctc = [float(r["train/ctc"]) for r in history if r.get("train/ctc")]
    assert train_ctc[-1] < 0.8 * train_ctc[0], train_ctc  # the CTC loss falls too


def test_loss_weight_zero_trains_only_the_other_head():
    """asr_weight=0 / emotion_weight=0: that head gets no gradient, its loss is still measured."""
    from functools import partial

    from speechexp.data.text import CharTokenizer
    from speechexp.losses.ctc import CTCLoss
    from speechexp.tasks.asr_emotion import AsrEmotionTask

    tokenizer = CharTokenizer()
    batch = {"features": torch.randn(2, 30, 8), "feature_lengths": torch.tensor([30, 24]),
             "tokens": torch.tensor([[3, 4, 5], [6, 7, 0]]), "token_lengths": torch.tensor([3, 2]),
             "emotion": torch.tensor([0, 1]), "text": ["bcd", "ef"], "path": ["a", "b"]}
    for asr_weight, emotion_weight in ((0.0, 1.0), (1.0, 0.0)):
        torch.manual_seed(0)
        model = MultitaskSpeechModel(n_mels=8, vocab_size=tokenizer.vocab_size, num_emotions=2, conv_channels=4,
                                     units=4)
        task = AsrEmotionTask(model, CTCLoss(), partial(torch.optim.Adam), tokenizer, ["a", "b"],
                              asr_weight=asr_weight, emotion_weight=emotion_weight)
        task.log = task.log_dict = lambda *args, **kwargs: None  # no trainer attached
        loss = task.training_step(batch, 0)
        loss.backward()
        ctc_grad, emotion_grad = model.ctc_head.weight.grad, model.emotion_head[-1].weight.grad
        assert (ctc_grad is None or not ctc_grad.any()) == (asr_weight == 0)
        assert (emotion_grad is None or not emotion_grad.any()) == (emotion_weight == 0)


def test_ablations_and_speaker_norm_log_every_metric(compose_train, tmp_path):
    for name, overrides in (("emotion_only", ("+ablation=emotion_only", "task.module.speaker_norm=true")),
                            ("asr_only", ("+ablation=asr_only", "scheduler=onecycle_step"))):
        cfg = compose_train("experiment=asr_emotion", "debug=fdr", *SMALL_CORPUS, *overrides,
                            "trainer.enable_progress_bar=false", run_name=name)
        train(cfg)
        results = read_results(tmp_path / name)
        assert results["status"] == "completed"
        for key in ("test/loss", "test/ctc", "test/emotion_ce", "test/cer", "test/wer", "test/accuracy",
                    "test/uar", "test/score", "train/items_per_s", "val/items_per_s", "val/score"):
            assert isinstance(results[key], float), (name, key)
