"""A trained checkpoint as a Python object: :func:`load_model`.

The checkpoint is loaded as data (``weights_only``, like ``speechexp-eval``); its saved
run config rebuilds the model and the task's front end (sample rate, log-mel settings,
tokenizer, emotion labels) without the dataset folder. What comes back depends on the
task the checkpoint was trained for:

- :class:`SeparationModel` (``task=separation``): ``separate(audio, sample_rate)`` →
  ``[n_sources, samples]`` at the input's rate and length;
- :class:`AsrEmotionModel` (``task=asr_emotion``): ``transcribe(audio, sample_rate)`` →
  :class:`~speechexp.inference.transcription.Transcription`.

Both take one recording or a list of them (then return a list), at any sample rate, mono
or multi-channel, integer or float (see :mod:`speechexp.inference.audio`).
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Sequence

import numpy as np
import torch

from speechexp.errors import SpeechexpError
from speechexp.inference.audio import fit_length, front_end, resample, to_mono
from speechexp.inference.separation import check_windows
from speechexp.inference.transcription import Transcription, collate_features
from speechexp.models.prosody import prosody_size

Audio = Any  # np.ndarray or torch.Tensor, [time] / [time, channels] / [channels, time]


def _as_list(audio: Audio | Sequence[Audio], sample_rate: int | Sequence[int]) -> tuple[list, list[int], bool]:
    """(recordings, their rates, whether one recording was passed)."""
    single = not isinstance(audio, (list, tuple))
    items = [audio] if single else list(audio)
    if isinstance(sample_rate, (list, tuple)):
        if len(sample_rate) != len(items):
            raise SpeechexpError(f"{len(items)} recordings but {len(sample_rate)} sample rates; pass one rate for "
                                 "all or one per recording.")
        given = list(sample_rate)
    else:
        given = [sample_rate] * len(items)
    try:
        rates = [int(r) for r in given]
    except (TypeError, ValueError):
        raise SpeechexpError(f"sample_rate={sample_rate!r} is not a number of samples per second; pass it in Hz, "
                             "e.g. 16000.") from None
    if any(r <= 0 for r in rates):
        raise SpeechexpError(f"sample_rate must be positive, not {sample_rate}.")
    return items, rates, single


def restore_sources(sources: torch.Tensor, model_rate: int, sample_rate: int, length: int) -> np.ndarray:
    """Separated ``sources [n_src, time]`` at ``model_rate`` → float32 ``[n_src, length]`` at
    ``sample_rate``: resampled back, then cut or padded to the input's exact length."""
    audio = sources.float().cpu().numpy()
    back = np.stack([resample(np.ascontiguousarray(row), model_rate, sample_rate) for row in audio])
    return fit_length(back, int(length)).astype(np.float32)


class LoadedModel:
    """What both kinds share: the task (a LightningModule in eval mode) on ``device``."""

    kind = ""
    main = ""  # the method that does this kind's work

    def __init__(self, task: Any, checkpoint: dict, device: str | torch.device = "cpu") -> None:
        self.task = task.eval().to(device)
        self.device = torch.device(device)
        self.config: dict = checkpoint["speechexp_config"]

    @property
    def sample_rate(self) -> int:
        """The rate the model works at; inputs at other rates are resampled to it and back."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sample_rate={self.sample_rate}, device={self.device})"

    def __getattr__(self, name: str) -> Any:
        """Only for names not found: one of the other kind's methods (``separate`` on a
        recogniser) is named for the kind of checkpoint it belongs to. Python also comes here
        when a property raised AttributeError inside: that error is shown, not "no attribute"."""
        found = inspect.getattr_static(type(self), name, None)
        if isinstance(found, property) and found.fget is not None:
            return found.fget(self)  # raises the property's own AttributeError again
        for other in LoadedModel.__subclasses__():
            if other is not type(self) and not name.startswith("_") and hasattr(other, name):
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}: this checkpoint "
                                     f"was trained for task={self.kind}, and {name} belongs to task={other.kind} "
                                     f"checkpoints; use {self.main}().")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class SeparationModel(LoadedModel):
    """A separator; see :meth:`separate`."""

    kind = "separation"
    main = "separate"

    @property
    def sample_rate(self) -> int:
        return int(self.task.sample_rate)

    @property
    def n_sources(self) -> int:
        return int(getattr(self.task.model, "n_src", 2))

    def separate(self, audio: Audio | Sequence[Audio], sample_rate: int | Sequence[int], *,
                 chunk_seconds: float | None = None, overlap_seconds: float | None = None,
                 batch_size: int = 16) -> np.ndarray | list[np.ndarray]:
        """Separate a recording (or a list of them) into ``[n_sources, samples]`` float32 at
        the input's ``sample_rate`` and length.

        Recordings longer than ``chunk_seconds`` (default :attr:`SeparationTask.chunk_seconds`)
        are separated in windows overlapping by ``overlap_seconds`` and overlap-added.
        """
        items, rates, single = _as_list(audio, sample_rate)
        mono = [to_mono(a, f"recording {i}") for i, a in enumerate(items)]
        at_model = [torch.from_numpy(resample(a, r, self.sample_rate)) for a, r in zip(mono, rates)]
        task = self.task
        saved = task.chunk_seconds, task.overlap_seconds, task.predict_batch_size
        try:
            task.chunk_seconds = saved[0] if chunk_seconds is None else float(chunk_seconds)
            task.overlap_seconds = saved[1] if overlap_seconds is None else float(overlap_seconds)
            task.predict_batch_size = int(batch_size)
            check_windows(task.chunk_seconds, task.overlap_seconds)
            sources = task.separate(at_model)
        finally:
            task.chunk_seconds, task.overlap_seconds, task.predict_batch_size = saved
        out = [self.restore(s, r, len(a)) for s, r, a in zip(sources, rates, mono)]
        return out[0] if single else out

    def restore(self, sources: torch.Tensor, sample_rate: int, length: int) -> np.ndarray:
        """Sources ``[n_src, time]`` at the model's rate → ``[n_src, length]`` at ``sample_rate``."""
        return restore_sources(sources, self.sample_rate, sample_rate, length)


class AsrEmotionModel(LoadedModel):
    """A multitask speech recogniser and emotion classifier; see :meth:`transcribe`.

    With ``speaker_norm`` (the multitask recipe), each utterance's features have its
    speaker's mean log-mel vector subtracted (and a model whose emotion head reads prosody
    reads it relative to the speaker's mean prosody); :meth:`transcribe` takes that mean
    (``speaker_mean``, e.g. from :meth:`speaker_mean` over the speaker's other
    utterances), or which recordings of the batch share a speaker (``speakers``), and by
    default treats each recording as its own speaker.
    """

    kind = "asr_emotion"
    main = "transcribe"

    def __init__(self, task: Any, checkpoint: dict, device: str | torch.device = "cpu") -> None:
        super().__init__(task, checkpoint, device)
        from speechexp.data.features import LogMel  # noqa: PLC0415

        datamodule = self.config["dataset"]["datamodule"]
        self.logmel = LogMel(sample_rate=int(datamodule.get("sample_rate", 16000)),
                             n_mels=int(datamodule.get("n_mels", 80)), n_fft=int(datamodule.get("n_fft", 400)),
                             hop_length=int(datamodule.get("hop_length", 160)),
                             win_length=datamodule.get("win_length"),
                             backend=str(datamodule.get("feature_backend", "librosa")))
        self.pitch_tracker = None  # the frames' F0 and voicing, for a model whose prosody includes pitch
        if datamodule.get("pitch"):
            from speechexp.models.pitch import PitchTracker  # noqa: PLC0415

            self.pitch_tracker = PitchTracker(self.logmel.sample_rate, self.logmel.hop_length)
        task.frame_seconds = self.logmel.hop_length / self.logmel.sample_rate

    @property
    def sample_rate(self) -> int:
        return int(self.logmel.sample_rate)

    @property
    def emotion_names(self) -> list[str]:
        return list(self.task.emotion_names)

    @property
    def speaker_norm(self) -> bool:
        """Whether the model subtracts each speaker's mean features."""
        return bool(self.task.speaker_norm)

    def features(self, audio: Audio, sample_rate: int) -> np.ndarray:
        """Log-mel features ``[frames, n_mels]`` of one recording, as the model reads them."""
        return self.logmel(resample(to_mono(audio), int(sample_rate), self.sample_rate))

    def front(self, audio: Audio, sample_rate: int) -> tuple[np.ndarray, np.ndarray | None]:
        """What the model reads of one recording: its log-mel ``features [frames, n_mels]`` and,
        when its prosody includes pitch, the frames' ``pitch [frames, 2]`` (else ``None``)."""
        return front_end(to_mono(audio), int(sample_rate), self.logmel, self.pitch_tracker)

    @property
    def speaker_mean_size(self) -> int:
        """The size of a speaker mean: ``n_mels``, and 6 more (the mean prosody; 9 with pitch)
        when the model reads speaker-relative prosody."""
        return int(self.logmel.n_mels) + (prosody_size(self.task.reads_pitch) if self.task.reads_prosody else 0)

    def speaker_mean(self, utterances: Sequence[Audio], sample_rate: int | Sequence[int]) -> np.ndarray:
        """One speaker's mean log-mel vector over all frames of ``utterances`` (the more, the
        closer to what training saw), followed by its mean prosody when the model reads it:
        ``[speaker_mean_size]``; pass it to :meth:`transcribe`."""
        items, rates, _ = _as_list(list(utterances), sample_rate)
        if not items:
            raise SpeechexpError("speaker_mean needs at least one utterance of the speaker.")
        return self.statistics_of([self.front(a, r) for a, r in zip(items, rates)]).numpy()

    def statistics_of(self, fronts: list[tuple[np.ndarray, np.ndarray | None]]) -> torch.Tensor:
        """One speaker's statistics from :meth:`front`'s output for each of its utterances."""
        pitch = [p for _, p in fronts] if self.pitch_tracker is not None else None
        return self.task.speaker_statistics([f for f, _ in fronts], pitch)

    def _lone(self, front: tuple[np.ndarray, np.ndarray | None]) -> torch.Tensor:
        pitch = None if front[1] is None else torch.as_tensor(front[1])
        return self.task.mean_of_lone_utterance(torch.as_tensor(front[0]), pitch)

    def transcribe(self, audio: Audio | Sequence[Audio], sample_rate: int | Sequence[int], *,
                   speaker_mean: Any = None, speakers: Sequence[Any] | None = None, words: bool = True,
                   batch_size: int = 16) -> Transcription | list[Transcription]:
        """Transcribe a recording (or a list) and classify its emotion.

        Args:
            audio, sample_rate: one recording and its rate, or lists of them (or one rate).
            speaker_mean: the speaker's mean ``[speaker_mean_size]`` (:meth:`speaker_mean`),
                for every recording, or a list with one per recording (``None`` entries:
                that recording alone). Only used when the model has ``speaker_norm``.
            speakers: a speaker label per recording; recordings with the same label share
                the mean over all of them. Default: each recording is its own speaker.
            words: also align the transcript for word timings.
        """
        items, rates, single = _as_list(audio, sample_rate)
        fronts = [self.front(a, r) for a, r in zip(items, rates)]
        means = self._means(fronts, speaker_mean, speakers) if self.speaker_norm else [None] * len(fronts)
        results: list[Transcription] = []
        saved = self.task.predict_words
        self.task.predict_words = bool(words)
        try:
            with torch.no_grad():
                for first in range(0, len(fronts), int(batch_size)):
                    part = range(first, min(first + int(batch_size), len(fronts)))
                    batch = collate_features([{"features": torch.from_numpy(fronts[i][0]), "speaker_mean": means[i],
                                               "pitch": fronts[i][1]} for i in part])
                    batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                    results += self.task.transcribe_batch(batch)
        finally:
            self.task.predict_words = saved
        return results[0] if single else results

    def _means(self, fronts: list[tuple[np.ndarray, np.ndarray | None]], speaker_mean: Any,
               speakers: Sequence[Any] | None) -> list[torch.Tensor]:
        """Each recording's speaker mean ``[speaker_mean_size]`` (``fronts``: :meth:`front`'s)."""
        n = len(fronts)
        if speaker_mean is not None and speakers is not None:
            raise SpeechexpError("Pass either speaker_mean or speakers to transcribe, not both.")
        if speakers is not None:
            labels = list(speakers)
            if len(labels) != n:
                raise SpeechexpError(f"{n} recordings but {len(labels)} speaker labels; pass one per recording.")
            shared = {label: self.statistics_of([f for f, other in zip(fronts, labels) if other == label])
                      for label in set(labels)}
            return [shared[label] for label in labels]
        if speaker_mean is None:
            return [self._lone(f) for f in fronts]
        given = speaker_mean if isinstance(speaker_mean, (list, tuple)) else [speaker_mean] * n
        if len(given) != n:
            raise SpeechexpError(f"{n} recordings but {len(given)} speaker means; pass one for all or one each.")
        means = []
        for f, mean in zip(fronts, given):
            mean = (self._lone(f) if mean is None
                    else torch.as_tensor(np.asarray(mean), dtype=torch.float32))
            if mean.shape != (self.speaker_mean_size,):
                raise SpeechexpError(f"speaker_mean has shape {tuple(mean.shape)}, not ({self.speaker_mean_size},); "
                                     "compute it with model.speaker_mean(utterances, sample_rate).")
            means.append(mean)
        return means


def load_model(ckpt_path: str | os.PathLike, device: str | torch.device = "cpu",
               decoder: str | dict | None = None) -> SeparationModel | AsrEmotionModel:
    """Load a checkpoint written by ``speechexp-train`` for use on any audio.

    Args:
        ckpt_path: a ``.ckpt`` file (e.g. ``<run dir>/checkpoints/last.ckpt``).
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        decoder: asr_emotion's CTC decoder: ``"greedy"``, ``"beam"``, ``"beam_lm"`` (the
            settings of ``conf/decoder/<name>.yaml``) or a config node; ``None``: the one the
            checkpoint was tested with (greedy unless chosen at training).

    Raises:
        SpeechexpError: the file is missing, not a speechexp checkpoint, holds code,
            or was trained for a task this API does not know; ``device`` is not one here.
    """
    from speechexp.config.machine import check_device  # noqa: PLC0415
    from speechexp.runs.build import task_without_data  # noqa: PLC0415
    from speechexp.runs.checkpoints import CONFIG_KEY, load_checkpoint, load_weights  # noqa: PLC0415
    from speechexp.tasks.asr_emotion import AsrEmotionTask  # noqa: PLC0415

    check_device(device)
    checkpoint = load_checkpoint(ckpt_path)
    config = checkpoint[CONFIG_KEY]
    task = task_without_data(config, checkpoint, ckpt_path, **({"decoder": decoder} if decoder is not None else {}))
    if task is None:
        target = ((config.get("task") or {}).get("module") or {}).get("_target_")
        raise SpeechexpError(f"Checkpoint {ckpt_path} was trained for task {(config.get('task') or {}).get('name')!r} "
                             f"({target or 'no task class'}), which inference does not support; pass a "
                             "separation or asr_emotion checkpoint.")
    load_weights(task, checkpoint, ckpt_path)
    kind = AsrEmotionModel if isinstance(task, AsrEmotionTask) else SeparationModel
    return kind(task, checkpoint, device)
