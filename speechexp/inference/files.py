"""The command line's inputs: which files ``input=`` names, who speaks in them, and a
dataset that reads each file as the model needs it and turns a bad file into a record
instead of an exception (so one corrupt file fails alone)."""

from __future__ import annotations

import csv
import glob
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from speechexp.data.progress import progress
from speechexp.errors import SpeechexpError
from speechexp.inference.audio import front_end, read_audio, resample
from speechexp.data.speaker_norm import SpeakerStatistics, speaker_statistics
from speechexp.inference.transcription import collate_features

# what a folder is searched for (case-insensitive); a glob or a file is taken as given
AUDIO_SUFFIXES = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf",
    ".w64", ".rf64", ".sph", ".nist", ".voc", ".m4a", ".aac", ".wma", ".webm",
})


def is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def audio_files(folder: Path) -> list[Path]:
    """The files under ``folder`` (recursively) whose suffix is in :data:`AUDIO_SUFFIXES`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def collect_inputs(spec: str) -> tuple[list[Path], Path]:
    """The files ``spec`` names, in a stable order, and the folder output names are relative to.

    ``spec`` is a file, a folder (searched recursively for :data:`AUDIO_SUFFIXES`) or a glob
    (``**`` recurses; every matching file is taken, every matching folder searched).

    Raises:
        SpeechexpError: nothing exists at ``spec`` or it names no audio file.
    """
    path = Path(os.path.expanduser(str(spec)))
    if path.is_file():
        return [path], path.parent
    if path.is_dir():
        files = audio_files(path)
        if not files:
            raise SpeechexpError(f"input={spec} is a folder without audio files ({', '.join(sorted(AUDIO_SUFFIXES)[:6])}"
                                 ", ...); pass a folder that holds some.")
        return files, path
    if is_glob(str(spec)):  # matching folders are searched like a folder
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(str(spec)), recursive=True))
        files = sorted({f for m in matches for f in ([m] if m.is_file() else audio_files(m) if m.is_dir() else [])})
        if not files:
            raise SpeechexpError(f"input={spec} matches no file; check the pattern (quote it so the shell "
                                 "leaves it to speechexp-infer).")
        root = Path(os.path.commonpath([str(p.parent.resolve()) for p in files]))
        return files, root
    raise SpeechexpError(f"input={spec} does not exist; pass input=FILE, a folder or a quoted glob.")


def output_names(files: Sequence[Path], root: Path) -> list[str]:
    """Each file's path relative to ``root`` without its suffix (``sub/take1``), the suffix
    kept (``sub/take1_flac``) where two files would otherwise share a name."""
    relative = []
    for path in files:
        try:
            relative.append(Path(path).resolve().relative_to(Path(root).resolve()))
        except ValueError:  # a glob's match outside the common root cannot happen; a name is enough
            relative.append(Path(Path(path).name))
    stems = [r.with_suffix("").as_posix() for r in relative]
    return [stem if stems.count(stem) == 1 else f"{stem}_{r.suffix.lstrip('.')}" for stem, r in zip(stems, relative)]


def assign_speakers(files: Sequence[Path], speakers: str | None) -> list[str] | None:
    """Each file's speaker: ``none`` → ``None`` (each file is its own speaker), ``folder`` →
    the file's folder, else a CSV file with columns ``path,speaker`` (relative paths are
    relative to the CSV's folder) that must list every file.

    Raises:
        SpeechexpError: an unreadable CSV, missing columns, or input files it does not list.
    """
    choice = str(speakers if speakers is not None else "none")
    if choice.lower() in ("none", "null", ""):
        return None
    if choice == "folder":
        return [str(Path(f).resolve().parent) for f in files]
    table = Path(choice)
    if not table.is_file():
        raise SpeechexpError(f"speakers={choice} is neither none, folder nor an existing CSV file; pass one of them.")
    try:
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpeechexpError(f"speakers={choice} cannot be read as CSV ({exc}); fix the file.") from None
    if not rows or not {"path", "speaker"} <= set(rows[0]):
        raise SpeechexpError(f"speakers={choice} needs the columns path,speaker and at least one row; fix the file.")
    known = {str((table.parent / row["path"]).resolve()): row["speaker"] for row in rows}
    labels = [known.get(str(Path(f).resolve())) for f in files]
    missing = [str(f) for f, label in zip(files, labels) if label is None]
    if missing:
        raise SpeechexpError(f"speakers={choice} does not list {len(missing)} of the {len(files)} input files "
                             f"(e.g. {missing[0]}); add rows for them or pass speakers=folder or none.")
    return [str(label) for label in labels]


def durations(files: Sequence[Path]) -> list[float]:
    """Each file's duration in seconds from its header (0 when unreadable), for length buckets."""
    import soundfile as sf  # noqa: PLC0415

    out = []
    for f in files:
        try:
            out.append(float(sf.info(f).duration))
        except Exception:  # noqa: BLE001 - read (and reported) properly later
            out.append(0.0)
    return out


class InferenceFiles(Dataset):
    """Item ``i`` is ``load(files[i])`` plus ``index``, ``sample_rate`` and ``samples`` (of the
    file), or ``{"index": i, "error": sentence}`` when the file cannot be used."""

    def __init__(self, files: Sequence[Path], load: Callable[[Any, int], dict]) -> None:
        self.files, self.load = list(files), load

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        try:
            audio, rate = read_audio(self.files[index])
            item = self.load(audio, rate, index)
        except SpeechexpError as exc:
            return {"index": index, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a bad file fails alone, with its reason
            return {"index": index, "error": f"{self.files[index]}: {type(exc).__name__}: {exc}"}
        return {**item, "index": index, "sample_rate": rate, "samples": int(audio.shape[0])}


class SeparationLoader:
    """A file's audio at the separator's rate: ``audio [time]``."""

    def __init__(self, model_rate: int) -> None:
        self.model_rate = int(model_rate)

    def __call__(self, audio, rate: int, index: int) -> dict:
        return {"audio": torch.from_numpy(resample(audio, rate, self.model_rate))}


class FeatureLoader:
    """A file's log-mel ``features [frames, n_mels]``, with a ``pitch`` tracker its ``pitch
    [frames, 2]``, and its ``speaker_mean`` (``[n_mels]``, or ``[n_mels + 6 or 9]`` with the
    mean prosody when ``prosody``): its speaker's (``means[speakers[index]]``) or, without
    speakers, ``lone_mean`` (the model's mean for a lone utterance) when given, else its own."""

    def __init__(self, logmel: Any, speaker_norm: bool, speakers: list[str] | None = None,
                 means: dict[str, torch.Tensor] | None = None, lone_mean: torch.Tensor | None = None,
                 prosody: bool = False, pitch: Any = None) -> None:
        self.logmel, self.speaker_norm, self.prosody = logmel, bool(speaker_norm), bool(prosody)
        self.speakers, self.means, self.fallback, self.pitch = speakers, means or {}, lone_mean, pitch

    def lone_mean(self, features, pitch=None) -> torch.Tensor:
        if self.fallback is not None:
            return self.fallback
        return speaker_statistics([features], self.prosody, None if pitch is None else [pitch])

    def front(self, audio, rate: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``features [frames, n_mels]`` and (or ``None``) ``pitch [frames, 2]`` of one recording."""
        features, pitch = front_end(audio, rate, self.logmel, self.pitch)
        return torch.from_numpy(features), None if pitch is None else torch.from_numpy(pitch)

    def __call__(self, audio, rate: int, index: int) -> dict:
        features, pitch = self.front(audio, rate)
        item: dict[str, Any] = {"features": features}
        if pitch is not None:
            item["pitch"] = pitch
        if self.speaker_norm:
            speaker = self.speakers[index] if self.speakers is not None else None
            item["speaker_mean"] = self.means[speaker] if speaker is not None else self.lone_mean(features, pitch)
        return item

    def speaker_means(self, files: Sequence[Path]) -> None:
        """Fill :attr:`means`: each speaker's statistics over its readable files."""
        statistics = SpeakerStatistics(self.prosody)
        for path, speaker in progress(zip(files, self.speakers), len(files), "Speaker statistics"):
            try:
                audio, rate = read_audio(path)
                features, pitch = self.front(audio, rate)
            except Exception:  # noqa: BLE001 - the file fails (with its reason) when it is processed
                continue
            statistics.add(speaker, features, pitch)
        self.means = statistics.means()


def collate_items(items: Sequence[dict], kind: str) -> dict:
    """A prediction batch: the readable items collated for the task (``separation``: ``audio``
    as a list; ``asr_emotion``: padded features), ``index``/``sample_rate``/``samples`` lists,
    and ``failed``: ``[{"index", "error"}]`` for the others."""
    ok = [item for item in items if "error" not in item]
    failed = [{"index": item["index"], "error": item["error"]} for item in items if "error" in item]
    if kind == "separation" or not ok:
        batch = {key: [item[key] for item in ok] for key in ("index", "sample_rate", "samples")}
        batch["audio"] = [item["audio"] for item in ok] if kind == "separation" else []
    else:
        batch = collate_features(ok)
    batch["failed"] = failed
    return batch
