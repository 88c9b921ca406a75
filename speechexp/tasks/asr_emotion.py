"""AsrEmotionTask: multitask training of CTC speech recognition and emotion classification.

The loss is ``asr_weight * CTC + emotion_weight * cross-entropy`` (``+ phoneme_weight *``
the phoneme CTC for a model with a phoneme head); the CTC loss comes from
the ``loss`` config group (the custom CTC or PyTorch's). A weight of 0 switches that
task's training off (its loss is still computed and logged, without gradient). Logged
per stage: ``loss``, ``ctc``, ``emotion_ce``, ``cer``/``wer`` (val: greedy decoding; test:
the ``decoder`` chosen, greedy by default, see :mod:`speechexp.inference.decoders`),
``per`` (val and test, a model with a phoneme head: the greedy phoneme error rate against
the transcript's espeak phonemes), emotion ``accuracy`` and ``uar`` (unweighted average
recall), ``score`` (val and test: ``((1 - cer) + uar) / 2``, one number for both tasks,
higher is better; see
:func:`combined_score`); test also logs ``cer_low`` and ``cer_high``, the test CER's 95 %
interval over its utterances (:func:`cer_interval_metrics`); throughput is logged for every task by
:class:`speechexp.runs.callbacks.EpochSummary`. After testing the run directory holds
``test_predictions.csv``, ``figures/emotion_confusion.png`` and a CTC alignment figure
of the first test utterance (its Viterbi path over the log-probs, and the soft alignment).

Prediction (``trainer.predict``, ``speechexp-infer``, :mod:`speechexp.inference`): a batch
holds log-mel ``features`` and, with ``speaker_norm``, each utterance's ``speaker_mean``
(computed by the caller from the utterances it says share a speaker, :meth:`AsrEmotionTask.speaker_statistics`:
``[n_mels]``, or ``[n_mels + 6]`` when the model also reads speaker-relative prosody, ``[n_mels + 9]``
when that includes pitch, whose batches then carry each frame's ``pitch``); each utterance
gets a :class:`~speechexp.inference.transcription.Transcription` (greedy transcript,
emotion and its probabilities, word timings from the Viterbi alignment).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
from torchmetrics.functional.text import char_error_rate, word_error_rate
from torchmetrics.text import CharErrorRate, WordErrorRate

from speechexp.data.phonemes import PhonemeTokenizer
from speechexp.data.speaker_norm import relative_prosody, speaker_means, speaker_statistics, subtract_speaker_means
from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError
from speechexp.inference.decoders import CTCDecoder, build_decoder
from speechexp.inference.transcription import Transcription, transcriptions
from speechexp.io import write_csv_atomic
from speechexp.losses.ctc import ctc_alignment, ctc_alignment_targets
from speechexp.models.adversary import VoiceAdversary, index_voices
from speechexp.models.prosody import utterance_prosody
from speechexp.tasks.base import ConfiguredTask
from speechexp.tasks.intervals import character_edits, rate_interval
from speechexp.viz.asr_emotion import plot_confusion_matrix, plot_ctc_alignment

STAGES = ("train", "val", "test")
EMOTION_NAMES_KEY = "speechexp_emotion_names"  # the label order, saved with the weights
TRANSCRIPTS_KEY = "speechexp_train_transcripts"  # what decoder=beam_lm fits its language model on
LONE_MEAN_KEY = "speechexp_lone_speaker_mean"  # the statistics a lone utterance is normalised with
NONFINITE_LOSS_HINT = ("likely cause: CTC inputs shorter than their targets (after the model's time subsampling); "
                       "set loss.zero_infinity=true, or use shorter targets or less subsampling (model.stride)")


def combined_score(cer: torch.Tensor | float, uar: torch.Tensor | float) -> torch.Tensor:
    """The multitask score ``((1 - cer) + uar) / 2``: 1 is perfect on both tasks, and one
    point of CER counts as much as one point of UAR. Logged as ``<stage>/score``."""
    return ((1 - torch.as_tensor(cer, dtype=torch.float32)) + torch.as_tensor(uar, dtype=torch.float32)) / 2


def per_source_metrics(rows: list[dict], emotion_names: list[str]) -> dict[str, float]:
    """``test/cer/<source>``, ``test/wer/<source>`` (``test/per/<source>`` for rows with
    phonemes, and ``test/uar/<source>`` over the rows with an emotion label) when the test
    rows come from two or more sources (the corpus' voices, a labelled folder's ``source``
    column)."""
    sources = sorted({row["source"] for row in rows if row["source"]})
    if len(sources) < 2:
        return {}
    out = {}
    for source in sources:
        mine = [row for row in rows if row["source"] == source]
        hypotheses, texts = [row["hypothesis"] for row in mine], [row["text"] for row in mine]
        out[f"test/cer/{source}"] = float(char_error_rate(hypotheses, texts))
        out[f"test/wer/{source}"] = float(word_error_rate(hypotheses, texts))
        if "phoneme_hypothesis" in mine[0]:
            out[f"test/per/{source}"] = float(word_error_rate([row["phoneme_hypothesis"] for row in mine],
                                                              [row["phoneme_text"] for row in mine]))
        labelled = [row for row in mine if row["emotion"]]
        if labelled:
            recalls = [np.mean([r["predicted_emotion"] == e for r in labelled if r["emotion"] == e])
                       for e in emotion_names if any(r["emotion"] == e for r in labelled)]
            out[f"test/uar/{source}"] = float(np.mean(recalls))
    return out


def cer_interval_metrics(rows: list[dict]) -> dict[str, float]:
    """``test/cer_low`` and ``test/cer_high``: the 95 % interval of the test rows' pooled CER
    over their utterances (a bootstrap, :mod:`speechexp.tasks.intervals`), which says how far
    the rate could move on other utterances of the same kind; empty for fewer than two rows."""
    interval = rate_interval(*character_edits([row["hypothesis"] for row in rows], [row["text"] for row in rows]))
    return {} if interval is None else {"test/cer_low": interval[0], "test/cer_high": interval[1]}


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
        n_media: test utterances logged to the run's W&B / TensorBoard loggers as audio with
            their transcripts (with the confusion matrix, the alignment and a predictions table).
        speaker_norm: subtract each speaker's mean features (over all its utterances in
            the split, see :mod:`speechexp.data.speaker_norm`) before the model; the
            means are computed once from the datamodule's splits when the task is set up.
        decoder: the test stage's and prediction's CTC decoder settings (``conf/decoder``;
            ``None``: greedy). Validation always decodes greedily (fast, every epoch).
        speaker_mean_dropout: with ``speaker_norm``, the share of training utterances whose
            speaker mean is replaced by the mean over the training speakers (saved with the
            weights): the model learns to read an utterance with no other utterance of its
            speaker, and prediction normalises such an utterance (``speakers=none``) with that
            mean instead of its own.
        phoneme_weight: weight of the phoneme CTC loss of a model with a phoneme head
            (``dataset.datamodule.phonemes=true``); ``decoder=beam_phonemes`` decodes that head.
        voice_adversary_weight: above 0, a :class:`~speechexp.models.adversary.VoiceAdversary`
            names each training utterance's voice (its ``source``) from the encoder frames, and
            its loss reaches the encoder through a gradient reversal ramped up to this scale
            (logged as ``train/voice_ce`` and ``train/voice_accuracy``); ``voice_adversary_classes``
            (at least the training voices) and ``voice_adversary_pooling`` (``frame`` or
            ``utterance``) shape it.

    A model whose emotion head reads ``prosody`` (``model.emotion_sources``) gets each
    utterance's prosody relative to its speaker's mean prosody (kept beside the speaker's
    mean features) with ``speaker_norm``, and as it is without. A model built with ``pitch``
    (``dataset.datamodule.pitch=true``) adds three pitch numbers to that prosody, from the
    batches' ``pitch`` tracks.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Callable[..., torch.optim.Optimizer],
                 tokenizer: CharTokenizer, emotion_names: list[str], scheduler: Callable[..., Any] | None = None,
                 asr_weight: float = 1.0, emotion_weight: float = 1.0, export_dir: str | None = None,
                 monitor: str = "val/loss", speaker_norm: bool = False, run_config: dict | None = None,
                 n_media: int = 3, decoder: dict | str | None = None, speaker_mean_dropout: float = 0.0,
                 phoneme_weight: float = 0.0, voice_adversary_weight: float = 0.0, voice_adversary_classes: int = 16,
                 voice_adversary_pooling: str = "frame"):
        super().__init__(optimizer, scheduler, monitor, run_config)
        self.speaker_norm, self.n_media = bool(speaker_norm), int(n_media)
        self.speaker_mean_dropout = float(speaker_mean_dropout)
        self.lone_mean: torch.Tensor | None = None  # [n_mels (+ 6)], when trained with speaker_mean_dropout
        self._speaker_means: dict[str, torch.Tensor] | None = None
        self.model, self.ctc = model, loss
        self.reads_prosody = bool(getattr(model, "reads_prosody", False))
        self.reads_pitch = bool(getattr(model, "reads_pitch", False))  # prosody [9]: the batches carry pitch
        self.tokenizer, self.emotion_names = tokenizer, list(emotion_names)
        self.asr_weight, self.emotion_weight = float(asr_weight), float(emotion_weight)
        self.export_dir = Path(export_dir) if export_dir else None
        self.phoneme_weight = float(phoneme_weight)
        self.has_phonemes = bool(getattr(model, "phoneme_classes", 0))  # the model's phoneme CTC head
        self.phoneme_tokenizer = PhonemeTokenizer() if self.has_phonemes else None
        if self.phoneme_weight and not self.has_phonemes:
            raise SpeechexpError("task.module.phoneme_weight needs a model with a phoneme head; add "
                                 "dataset.datamodule.phonemes=true, or set task.module.phoneme_weight=0.")
        self.decoder = build_decoder(decoder)
        if getattr(self.decoder, "reads_phonemes", False) and not self.has_phonemes:
            raise SpeechexpError(f"decoder={self.decoder.kind} reads a phoneme head, and this model has none; train "
                                 "with dataset.datamodule.phonemes=true task.module.phoneme_weight=1, or pick "
                                 "another decoder (greedy, beam_english).")
        self.greedy = CTCDecoder().prepare(tokenizer)
        self.voice_adversary_weight = float(voice_adversary_weight)
        self.voice_adversary: VoiceAdversary | None = None
        self.voice_index: dict[str, int] = {}  # training source -> class, set up from the training split
        self._encoder_frames: torch.Tensor | None = None  # the last training forward's, while fitting
        self._encoder_hook: Any = None
        if self.voice_adversary_weight > 0:
            self.voice_adversary = VoiceAdversary(model.ctc_head.in_features, int(voice_adversary_classes),
                                                 pooling=voice_adversary_pooling)
        self.saved_transcripts: list[str] | None = None  # from a checkpoint, when there is no datamodule
        n_emotions = len(self.emotion_names)
        # keyed "<stage>_metrics": a bare "train" key would shadow nn.Module.train
        self.metrics = nn.ModuleDict({
            f"{stage}_metrics": MetricCollection({
                "accuracy": MulticlassAccuracy(n_emotions, average="micro"),
                "uar": MulticlassAccuracy(n_emotions, average="macro"),
                **({"cer": CharErrorRate(), "wer": WordErrorRate()} if stage != "train" else {}),
                **({"per": WordErrorRate()} if stage != "train" and self.has_phonemes else {}),
            }) for stage in STAGES
        })
        self.confusion = MulticlassConfusionMatrix(n_emotions)
        self.nonfinite_loss_hint = NONFINITE_LOSS_HINT  # read by speechexp.runs.callbacks.NonFiniteLossGuard
        self._predictions: list[dict] = []
        self._alignment_example: tuple | None = None

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, prosody: torch.Tensor | None = None,
                with_phonemes: bool = False):
        if with_phonemes:
            return self.model(features, lengths, prosody, with_phonemes=True)
        if prosody is None:
            return self.model(features, lengths)
        return self.model(features, lengths, prosody)

    def decode_outputs(self, decoder: Callable, log_probs: torch.Tensor, out_lengths: torch.Tensor,
                       phoneme_log_probs: torch.Tensor | None) -> list[str]:
        """Transcripts from the head the decoder reads: the phonemes for ``beam_phonemes``, else the characters."""
        if getattr(decoder, "reads_phonemes", False):
            return decoder(phoneme_log_probs.detach(), out_lengths)
        return decoder(log_probs.detach(), out_lengths)

    def greedy_transcripts(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Best-path decoding of ``log_probs (T, N, C)`` within each length."""
        return self.greedy(log_probs, lengths)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[EMOTION_NAMES_KEY] = list(self.emotion_names)  # inference needs no dataset folder
        transcripts = self.training_transcripts()
        if transcripts is not None:
            checkpoint[TRANSCRIPTS_KEY] = transcripts  # decoder=beam_lm anywhere the checkpoint goes
        if self.lone_mean is not None:
            checkpoint[LONE_MEAN_KEY] = self.lone_mean.tolist()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """What :meth:`on_save_checkpoint` stored beside the weights: the lone-recording mean
        and the training transcripts (for ``decoder=beam_lm`` without the dataset)."""
        super().on_load_checkpoint(checkpoint)
        if checkpoint.get(LONE_MEAN_KEY) is not None:
            self.lone_mean = torch.tensor(checkpoint[LONE_MEAN_KEY], dtype=torch.float32)
        if checkpoint.get(TRANSCRIPTS_KEY) is not None:
            self.saved_transcripts = list(checkpoint[TRANSCRIPTS_KEY])

    def _datamodule(self) -> Any:
        """The trainer's datamodule; ``None`` for a task loaded for inference (no trainer)."""
        try:
            return getattr(self.trainer, "datamodule", None)
        except RuntimeError:  # Lightning: "not attached to a Trainer"
            return None

    def training_transcripts(self) -> list[str] | None:
        """The training split's distinct normalised transcripts (from the datamodule, else the checkpoint)."""
        datamodule = self._datamodule()
        if callable(getattr(datamodule, "dataset", None)):  # a training datamodule (not speechexp-infer's files)
            rows = datamodule.dataset("train").rows
            if len(rows):  # an evaluation folder has no training split: the checkpoint's then
                return sorted({self.tokenizer.normalize(t) for t in rows["text"]})
        return self.saved_transcripts

    def prepare_decoder(self) -> None:
        """Fit or load what the chosen decoder needs (beam_lm: the training transcripts' n-gram model)."""
        if self.decoder.tokenizer is not None:
            return
        cache = getattr(self._datamodule(), "dataset_dir", None)
        transcripts = self.training_transcripts() if self.decoder.needs_transcripts else None
        self.decoder.prepare(self.tokenizer, transcripts, Path(cache) if cache else None)

    def on_fit_start(self) -> None:
        """With a voice adversary, keep the encoder's frames of each training forward pass (a
        hook held only while fitting, so a model loaded for inference or export carries none)."""
        if self.voice_adversary is not None and self._encoder_hook is None:
            self._encoder_hook = self.model.encoder.register_forward_hook(self._keep_encoder_frames)

    def on_fit_end(self) -> None:
        if self._encoder_hook is not None:
            self._encoder_hook.remove()
            self._encoder_hook, self._encoder_frames = None, None

    def _keep_encoder_frames(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Forward hook on the encoder: its frames ``[batch, frames', 2 * units]`` for the voice adversary."""
        self._encoder_frames = output if self.training else None

    def voice_adversary_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The voice adversary's loss and frame accuracy on the last training forward pass, its
        reversal scale ramped from 0 to ``voice_adversary_weight`` over training (Ganin's
        ``2 / (1 + exp(-10 p)) - 1``); ``None`` without an adversary."""
        if self.voice_adversary is None or self._encoder_frames is None:
            return None
        voices = torch.tensor([self.voice_index.get(s, -1) for s in batch["source"]], device=self.device)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        progress = min(1.0, self.global_step / total)
        scale = self.voice_adversary_weight * (2 / (1 + np.exp(-10 * progress)) - 1)
        lengths = self.model.encoder_lengths(batch["feature_lengths"]).clamp(max=self._encoder_frames.shape[1])
        return self.voice_adversary(self._encoder_frames, lengths, voices, scale)

    def setup(self, stage: str) -> None:
        if stage in ("test", "predict"):
            self.prepare_decoder()
        if self.voice_adversary is not None and stage == "fit" and not self.voice_index:
            self.voice_index = index_voices(self.trainer.datamodule.dataset("train").sources,
                                            self.voice_adversary.classifier[-1].out_features)
        if not self.speaker_norm or self._speaker_means is not None or stage == "predict":
            return  # prediction batches carry their speaker means
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "dataset"):
            raise SpeechexpError("task.module.speaker_norm=true needs a datamodule with per-split datasets "
                                 "(EmotionSpeechDataModule); set it to false for other data.")
        self._speaker_means = {}
        for split in STAGES:
            self._speaker_means.update(speaker_means(datamodule.dataset(split), self.reads_prosody, self.reads_pitch))
        if self.speaker_mean_dropout > 0 and self.lone_mean is None:
            train_paths = set(datamodule.dataset("train").rows["path"])
            per_speaker = {id(m): m for p, m in self._speaker_means.items() if p in train_paths}
            if per_speaker:  # an evaluation set has no train split: the checkpoint's mean is restored
                self.lone_mean = torch.stack(list(per_speaker.values())).mean(0)  # each training speaker once

    def use_speaker_means(self, means: dict[str, torch.Tensor]) -> None:
        """Normalise by these speaker statistics (recording path → ``[n_mels (+ prosody)]``, as
        :func:`~speechexp.data.speaker_norm.speaker_means` gives them) instead of those
        :meth:`setup` computes from the trainer's datamodule: for scripts that run the model by hand."""
        self._speaker_means = dict(means)

    def model_input(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the model reads of a training batch: the features ``[batch, frames, n_mels]``,
        speaker-normalised when asked, and (or ``None``) the speaker-relative prosody ``[batch, 6 or 9]``."""
        pitch = self.batch_pitch(batch)
        if not self.speaker_norm:
            return self.normalised(batch["features"], batch["feature_lengths"], None, pitch)
        try:
            means = [self._speaker_means[path] for path in batch["path"]]
        except (KeyError, TypeError) as missing:
            raise SpeechexpError(f"No speaker statistics for {missing}; speaker_norm needs every utterance "
                                 "in the datamodule's splits.") from None
        if self.training and self.speaker_mean_dropout > 0 and self.lone_mean is not None:
            lone = (torch.rand(len(means)) < self.speaker_mean_dropout).tolist()
            means = [self.lone_mean if alone else mean for alone, mean in zip(lone, means)]
        return self.normalised(batch["features"], batch["feature_lengths"], means, pitch)

    def batch_pitch(self, batch: dict) -> torch.Tensor | None:
        """The batch's ``pitch [batch, frames, 2]`` when the model's prosody includes pitch."""
        if not self.reads_pitch:
            return None
        if batch.get("pitch") is None:
            raise SpeechexpError("This model's prosody includes pitch, but the batches carry no pitch tracks; "
                                 "read the data with dataset.datamodule.pitch=true.")
        return batch["pitch"]

    def normalised(self, features: torch.Tensor, lengths: torch.Tensor, means: list[torch.Tensor] | None,
                   pitch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw ``features [batch, frames, n_mels]``, each utterance's speaker statistics
        (``None`` without ``speaker_norm``) and, for a model whose prosody includes pitch, the
        frames' ``pitch [batch, frames, 2]`` → the features minus the speaker mean and, when the
        model reads it, the prosody ``[batch, 6 or 9]`` relative to the speaker's (else ``None``)."""
        if means is None:
            return features, utterance_prosody(features, lengths, pitch) if self.reads_prosody else None
        prosody = relative_prosody(features, lengths, means, pitch) if self.reads_prosody else None
        return subtract_speaker_means(features, lengths, means), prosody

    def speaker_statistics(self, features: list, pitch: list | None = None) -> torch.Tensor:
        """One speaker's statistics from its utterances' ``features`` (each ``[frames, n_mels]``,
        and their ``pitch [frames, 2]`` when the model's prosody includes it): the mean over all
        frames ``[n_mels]``, followed by the mean utterance prosody ``[6 or 9]`` when the model
        reads prosody."""
        return speaker_statistics(features, self.reads_prosody, pitch if self.reads_pitch else None)

    def mean_of_lone_utterance(self, features: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """The speaker statistics for an utterance ``[frames, n_mels]`` (``pitch [frames, 2]``)
        with no other utterance of its speaker: the training speakers' mean when the model
        learned to read it (``speaker_mean_dropout``), else the utterance's own."""
        if self.lone_mean is not None:
            return self.lone_mean
        return self.speaker_statistics([features], None if pitch is None else [pitch])

    def _shared_step(self, batch: dict, stage: str):
        features, prosody = self.model_input(batch)
        phoneme_log_probs, phoneme_ctc = None, None
        if self.has_phonemes:
            log_probs, out_lengths, emotion_logits, phoneme_log_probs = self(
                features, batch["feature_lengths"], prosody, with_phonemes=True)
            if batch.get("phonemes") is not None:
                phoneme_input = phoneme_log_probs.float() if self.phoneme_weight else phoneme_log_probs.detach().float()
                phoneme_ctc = self.ctc(phoneme_input, batch["phonemes"], out_lengths, batch["phoneme_lengths"])
        else:
            log_probs, out_lengths, emotion_logits = self(features, batch["feature_lengths"], prosody)
        # a task weighted 0 is only measured: no gradient flows from its loss
        ctc_input = log_probs.float() if self.asr_weight else log_probs.detach().float()
        ctc = self.ctc(ctc_input, batch["tokens"], out_lengths, batch["token_lengths"])
        emotion_input = emotion_logits.float() if self.emotion_weight else emotion_logits.detach().float()
        predicted = emotion_logits.argmax(-1)
        target, emotion_input, predicted_labelled = self._labelled(batch, emotion_input, predicted)
        emotion_ce = F.cross_entropy(emotion_input, target) if target.numel() else None
        terms = [w * term for w, term in ((self.asr_weight, ctc), (self.emotion_weight, emotion_ce),
                                          (self.phoneme_weight, phoneme_ctc))
                 if w and term is not None]
        loss = sum(terms) if terms else (ctc + (emotion_ce if emotion_ce is not None else 0)).detach()
        size = batch["features"].shape[0]
        adversary = self.voice_adversary_loss(batch) if stage == "train" else None
        if adversary is not None:
            loss = loss + adversary[0]
            self.log_dict({"train/voice_ce": adversary[0], "train/voice_accuracy": adversary[1]},
                          on_step=False, on_epoch=True, batch_size=size)
        metrics = self.metrics[f"{stage}_metrics"]
        if target.numel():
            metrics["accuracy"].update(predicted_labelled, target)
            metrics["uar"].update(predicted_labelled, target)
        hypotheses, sounds = None, None
        if stage != "train":
            decode = self.decoder if stage == "test" else self.greedy
            hypotheses = self.decode_outputs(decode, log_probs, out_lengths, phoneme_log_probs)
            metrics["cer"].update(hypotheses, batch["text"])
            metrics["wer"].update(hypotheses, batch["text"])
            if phoneme_ctc is not None:
                sounds = self.phoneme_sounds(phoneme_log_probs, out_lengths, batch)
                metrics["per"].update(*sounds)
        losses = {f"{stage}/loss": loss, f"{stage}/ctc": ctc, f"{stage}/emotion_ce": emotion_ce,
                  f"{stage}/phoneme_ctc": phoneme_ctc}
        self.log_dict({key: value for key, value in losses.items() if value is not None},
                      on_step=False, on_epoch=True, prog_bar=stage != "test", batch_size=size, sync_dist=True)
        self.log(f"{stage}/loss_batch", loss, on_step=True, on_epoch=False, batch_size=size)
        self.log_dict({f"{stage}/{name}": metric for name, metric in metrics.items() if metric.update_count},
                      on_step=False, on_epoch=True, prog_bar=stage == "val", batch_size=size)
        return loss, log_probs, out_lengths, predicted, hypotheses, sounds

    def phoneme_sounds(self, phoneme_log_probs: torch.Tensor, out_lengths: torch.Tensor,
                       batch: dict) -> tuple[list[str], list[str]]:
        """The phoneme head's greedy phonemes and the transcripts' phonemes, as phoneme-name
        strings without word boundaries (a word error rate over them is the phoneme error rate)."""
        targets = [self.phoneme_tokenizer.sounds(row[:int(n)])
                   for row, n in zip(batch["phonemes"].cpu(), batch["phoneme_lengths"].tolist())]
        return self.phoneme_tokenizer.greedy(phoneme_log_probs, out_lengths), targets

    @staticmethod
    def _labelled(batch: dict, *per_row: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The emotion targets ``[labelled]`` and the ``per_row`` tensors (first dim: batch),
        kept to the rows with an emotion label (target -1 marks the others). A fully labelled
        batch (every training batch; collate counts ``labelled`` on the CPU, so this needs no
        device sync) passes through untouched."""
        target = batch["emotion"]
        if batch.get("labelled", len(target)) == len(target):
            return (target, *per_row)
        mask = target >= 0
        return (target[mask], *(tensor[mask] for tensor in per_row))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")[0]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    # -- the combined score, once per evaluation epoch (throughput: callbacks.EpochSummary)
    def _log_score(self, stage: str) -> None:
        metrics = self.metrics[f"{stage}_metrics"]
        if metrics["cer"].update_count and metrics["uar"].update_count:
            self.log(f"{stage}/score", combined_score(metrics["cer"].compute(), metrics["uar"].compute()),
                     on_epoch=True, prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        self._log_score("val")

    # -- prediction: recordings of a user's (speechexp-infer, the Python API)
    frame_seconds: float = 0.01  # seconds per feature frame (hop / rate), set by the loader
    predict_words: bool = True  # word timings (a Viterbi alignment per utterance)

    def transcribe_batch(self, batch: dict) -> list[Transcription]:
        """``features [batch, frames, n_mels]``, ``feature_lengths [batch]`` and, with
        ``speaker_norm``, ``speaker_mean [batch, n_mels (+ 6 or 9)]`` (:meth:`speaker_statistics`),
        and ``pitch [batch, frames, 2]`` for a model whose prosody includes pitch → one
        transcription per utterance."""
        features, lengths, means = batch["features"], batch["feature_lengths"], None
        if self.speaker_norm:
            if batch.get("speaker_mean") is None:
                raise SpeechexpError("This model subtracts each speaker's mean features; pass the speaker's mean "
                                     "(speaker_mean) or its utterances.")
            means = list(batch["speaker_mean"])
        features, prosody = self.normalised(features, lengths, means, self.batch_pitch(batch))
        phonemes = getattr(self.decoder, "reads_phonemes", False)
        log_probs, out_lengths, emotion_logits, *phoneme_log_probs = self(features, lengths, prosody, phonemes)
        model = self.model
        ctc_frame = self.frame_seconds * getattr(model, "stride", 1) / getattr(model, "ctc_upsample", 1)
        self.prepare_decoder()
        decoder = self.decoder
        if phonemes:  # the words come from the phoneme head; their timings from the characters' alignment
            def decoder(_, lengths):
                return self.decoder(phoneme_log_probs[0].detach(), lengths)
        return transcriptions(log_probs, out_lengths, emotion_logits, self.tokenizer, self.emotion_names,
                              ctc_frame, words=self.predict_words, decoder=decoder)

    def predict_step(self, batch: dict, batch_idx: int = 0) -> dict:
        """``batch`` as :meth:`transcribe_batch` takes it, with ``index`` (list) and ``failed``
        (files that could not be read, passed through) → ``index``, ``transcriptions``, ``failed``."""
        results = self.transcribe_batch(batch) if batch["index"] else []
        return {"index": batch["index"], "transcriptions": results, "failed": batch.get("failed", [])}

    def on_test_epoch_start(self) -> None:
        self._predictions, self._alignment_example = [], None
        self.confusion.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        _, log_probs, out_lengths, predicted, hypotheses, sounds = self._shared_step(batch, "test")
        target, predicted_labelled = self._labelled(batch, predicted)
        if target.numel():
            self.confusion.update(predicted_labelled, target)
        for i, hypothesis in enumerate(hypotheses):
            label = int(batch["emotion"][i])
            self._predictions.append({
                "path": batch["path"][i], "text": batch["text"][i], "hypothesis": hypothesis,
                "cer": round(char_error_rate([hypothesis], [batch["text"][i]]).item(), 4),
                "emotion": self.emotion_names[label] if label >= 0 else "",
                "predicted_emotion": self.emotion_names[int(predicted[i])],
                "source": batch.get("source", [""] * len(hypotheses))[i],
                **({"phoneme_text": sounds[1][i], "phoneme_hypothesis": sounds[0][i]} if sounds else {}),
            })
        if self._alignment_example is None:
            self._alignment_example = (log_probs[:, :1].detach().float().cpu(), batch["tokens"][:1].cpu(),
                                       out_lengths[:1].cpu(), batch["token_lengths"][:1].cpu(), batch["text"][0])

    def on_test_epoch_end(self) -> None:
        self._log_score("test")
        with warnings.catch_warnings():  # an evaluation set without emotion labels never updates it
            warnings.filterwarnings("ignore", message=r".*compute.*called before the ``update``")
            confusion = self.confusion.compute().cpu().numpy()  # synced across processes: every rank computes
        predictions = self.gather_rows(self._predictions)
        if predictions:
            self.log_dict({**per_source_metrics(predictions, self.emotion_names), **cer_interval_metrics(predictions)},
                          rank_zero_only=True)
        if self.export_dir is None or not predictions:  # not rank 0, or nothing tested
            return
        predictions = sorted(predictions, key=lambda row: row["path"])
        write_csv_atomic(self.export_dir / "test_predictions.csv", predictions, list(predictions[0].keys()))
        figures = self.export_dir / "figures"
        if any(row["emotion"] for row in predictions):  # an evaluation set may name no emotion
            plot_confusion_matrix(confusion, self.emotion_names, "Emotion confusion (test)",
                                  figures / "emotion_confusion.png")
        log_probs, tokens, lengths, token_lengths, text = self._alignment_example
        path, score = ctc_alignment(log_probs, tokens, lengths, token_lengths, blank=0)
        soft = ctc_alignment_targets(log_probs, tokens, lengths, token_lengths, blank=0)
        frames = int(lengths[0])
        labels = ["<b>"] + [c if c != " " else "␣" for c in self.tokenizer.chars]
        plot_ctc_alignment(log_probs[:frames, 0].numpy(), path[0, :frames].numpy(), labels,
                           f"Viterbi alignment of \"{text}\" (path log-score {float(score[0]):.1f})",
                           figures / "ctc_alignment.png", posteriors=soft[:frames, 0].numpy())
        self._log_media(predictions, figures)

    MEDIA_TABLE_ROWS = 50  # test predictions in the W&B / TensorBoard table

    def _log_media(self, predictions: list[dict], figures: Path) -> None:
        """Log the confusion matrix and alignment images, a table of test predictions and
        ``n_media`` utterances as audio with their transcripts to the W&B / TensorBoard loggers."""
        import soundfile as sf  # noqa: PLC0415

        from speechexp.runs.media import log_audio, log_images, log_table, takes_media, timed  # noqa: PLC0415

        if not takes_media(self.trainer.loggers):  # a CSV log: no audio read for it
            return

        with timed("Test media logged"):
            step = self.trainer.global_step
            images = {"test/emotion_confusion": figures / "emotion_confusion.png",
                      "test/ctc_alignment": figures / "ctc_alignment.png"}
            log_images(self.trainer.loggers, {k: path for k, path in images.items() if path.is_file()}, step=step)
            columns = ["text", "hypothesis", "cer", "emotion", "predicted_emotion"]
            log_table(self.trainer.loggers, "test/predictions", columns,
                      [[row[c] for c in columns] for row in predictions[: self.MEDIA_TABLE_ROWS]], step=step)
            clips: dict[int, dict[str, Any]] = {}  # sample rate -> {key: audio}
            captions = {}
            for row in predictions[: self.n_media]:
                try:
                    audio, sample_rate = sf.read(row["path"], dtype="float32", always_2d=True)
                except Exception:  # noqa: BLE001  (an unreadable file: no clip)
                    continue
                key = f"test/audio/{Path(row['path']).stem}"
                clips.setdefault(int(sample_rate), {})[key] = audio.mean(axis=1)
                captions[key] = f"{row['text']} -> {row['hypothesis']} ({row['emotion']} -> {row['predicted_emotion']})"
            for sample_rate, group in clips.items():
                log_audio(self.trainer.loggers, group, sample_rate, step=step, captions=captions)
