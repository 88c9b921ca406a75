"""AsrEmotionTask: multitask training of CTC speech recognition and emotion classification.

The loss is ``asr_weight * CTC + emotion_weight * cross-entropy``; the CTC loss comes from
the ``loss`` config group (the custom CTC or PyTorch's). Logged per stage: ``loss``,
``ctc``, ``emotion_ce``, ``cer``/``wer`` (greedy decoding; val and test) and emotion
``accuracy`` and ``uar`` (unweighted average recall). After testing the run directory
holds ``test_predictions.csv``, ``figures/emotion_confusion.png`` and a CTC alignment
figure of the first test utterance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
from torchmetrics.functional.text import char_error_rate
from torchmetrics.text import CharErrorRate, WordErrorRate

from speechexp.data.text import CharTokenizer
from speechexp.io import write_csv_atomic
from speechexp.losses.ctc import ctc_alignment
from speechexp.tasks.base import ConfiguredTask
from speechexp.viz.asr_emotion import plot_confusion_matrix, plot_ctc_alignment

STAGES = ("train", "val", "test")
NONFINITE_LOSS_HINT = ("likely cause: CTC inputs shorter than their targets (after the model's time subsampling); "
                       "set loss.zero_infinity=true, or use shorter targets or less subsampling (model.stride)")


class AsrEmotionTask(ConfiguredTask):
    """Wraps a model ``(features, lengths) → (log_probs (T, N, C), out_lengths, emotion_logits)``.

    Args:
        model: e.g. :class:`speechexp.models.multitask.MultitaskSpeechModel`.
        loss: a CTC loss module called as ``loss(log_probs, targets, input_lengths, target_lengths)``.
        optimizer, scheduler: partial constructors (see SeparationTask).
        tokenizer, emotion_names: from the datamodule, for decoding and reports.
        asr_weight, emotion_weight: weights of the two losses.
        export_dir: where test exports go; ``None`` disables them.
        monitor: the metric a plateau scheduler follows.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 tokenizer: CharTokenizer, emotion_names: list[str], scheduler: Callable[..., Any] | None = None,
                 asr_weight: float = 1.0, emotion_weight: float = 1.0, export_dir: str | None = None,
                 monitor: str = "val/loss"):
        super().__init__(optimizer, scheduler, monitor)
        self.model, self.ctc = model, loss
        self.tokenizer, self.emotion_names = tokenizer, list(emotion_names)
        self.asr_weight, self.emotion_weight = float(asr_weight), float(emotion_weight)
        self.export_dir = Path(export_dir) if export_dir else None
        n_emotions = len(self.emotion_names)
        # keyed "<stage>_metrics": a bare "train" key would shadow nn.Module.train
        self.metrics = nn.ModuleDict({
            f"{stage}_metrics": MetricCollection({
                "accuracy": MulticlassAccuracy(n_emotions, average="micro"),
                "uar": MulticlassAccuracy(n_emotions, average="macro"),
                **({"cer": CharErrorRate(), "wer": WordErrorRate()} if stage != "train" else {}),
            }) for stage in STAGES
        })
        self.confusion = MulticlassConfusionMatrix(n_emotions)
        self.nonfinite_loss_hint = NONFINITE_LOSS_HINT  # read by speechexp.callbacks.NonFiniteLossGuard
        self._predictions: list[dict] = []
        self._alignment_example: tuple | None = None

    def forward(self, features: torch.Tensor, lengths: torch.Tensor):
        return self.model(features, lengths)

    def greedy_transcripts(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Best-path decoding of ``log_probs (T, N, C)`` within each length."""
        best = log_probs.argmax(-1).T.cpu()  # [batch, frames]
        return [self.tokenizer.ctc_decode(best[i, : int(n)]) for i, n in enumerate(lengths.cpu())]

    def _shared_step(self, batch: dict, stage: str):
        log_probs, out_lengths, emotion_logits = self(batch["features"], batch["feature_lengths"])
        ctc = self.ctc(log_probs.float(), batch["tokens"], out_lengths, batch["token_lengths"])
        emotion_ce = F.cross_entropy(emotion_logits.float(), batch["emotion"])
        loss = self.asr_weight * ctc + self.emotion_weight * emotion_ce
        size = batch["features"].shape[0]
        metrics = self.metrics[f"{stage}_metrics"]
        predicted = emotion_logits.argmax(-1)
        metrics["accuracy"].update(predicted, batch["emotion"])
        metrics["uar"].update(predicted, batch["emotion"])
        hypotheses = None
        if stage != "train":
            hypotheses = self.greedy_transcripts(log_probs.detach(), out_lengths)
            metrics["cer"].update(hypotheses, batch["text"])
            metrics["wer"].update(hypotheses, batch["text"])
        self.log_dict({f"{stage}/loss": loss, f"{stage}/ctc": ctc, f"{stage}/emotion_ce": emotion_ce},
                      on_step=False, on_epoch=True, prog_bar=stage != "test", batch_size=size, sync_dist=True)
        self.log(f"{stage}/loss_batch", loss, on_step=True, on_epoch=False, batch_size=size)
        self.log_dict({f"{stage}/{name}": metric for name, metric in metrics.items()},
                      on_step=False, on_epoch=True, prog_bar=stage == "val", batch_size=size)
        return loss, log_probs, out_lengths, predicted, hypotheses

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self._predictions, self._alignment_example = [], None
        self.confusion.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        _, log_probs, out_lengths, predicted, hypotheses = self._shared_step(batch, "test")
        self.confusion.update(predicted, batch["emotion"])
        for i, hypothesis in enumerate(hypotheses):
            self._predictions.append({
                "path": batch["path"][i], "text": batch["text"][i], "hypothesis": hypothesis,
                "cer": round(char_error_rate([hypothesis], [batch["text"][i]]).item(), 4),
                "emotion": self.emotion_names[int(batch["emotion"][i])],
                "predicted_emotion": self.emotion_names[int(predicted[i])],
            })
        if self._alignment_example is None:
            self._alignment_example = (log_probs[:, :1].detach().float().cpu(), batch["tokens"][:1].cpu(),
                                       out_lengths[:1].cpu(), batch["token_lengths"][:1].cpu(), batch["text"][0])

    def on_test_epoch_end(self) -> None:
        if self.export_dir is None:
            return
        confusion = self.confusion.compute().cpu().numpy()  # synced across processes: every rank computes
        predictions = self.gather_rows(self._predictions)
        if not predictions:  # not rank 0, or nothing tested
            return
        predictions = sorted(predictions, key=lambda row: row["path"])
        write_csv_atomic(self.export_dir / "test_predictions.csv", predictions, list(predictions[0].keys()))
        figures = self.export_dir / "figures"
        plot_confusion_matrix(confusion, self.emotion_names, "Emotion confusion (test)", figures / "emotion_confusion.png")
        log_probs, tokens, lengths, token_lengths, text = self._alignment_example
        path, score = ctc_alignment(log_probs, tokens, lengths, token_lengths, blank=0)
        frames = int(lengths[0])
        labels = ["<b>"] + [c if c != " " else "␣" for c in self.tokenizer.chars]
        plot_ctc_alignment(log_probs[:frames, 0].numpy(), path[0, :frames].numpy(), labels,
                           f"Viterbi alignment of \"{text}\" (path log-score {float(score[0]):.1f})",
                           figures / "ctc_alignment.png")
