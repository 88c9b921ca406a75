"""What every corpus indexer shares: file discovery, label mapping, splits, ``metadata.csv``.

Emotion, speaker and transcript are decoded from the file names; the audio stays where
it is (``metadata.csv`` holds absolute paths). Each corpus' emotion names are mapped to
the experiment's label set through ``label_map`` (several names may map to one label;
names mapped to null or missing from the map are dropped and counted in the log).
Splits hold out speakers (or, with ``split_by: text``, sentences), seeded.

One file per corpus sits beside this one; adding a corpus is a file with a
:class:`CorpusPreparer` subclass (its ``parse``) plus a ``conf/dataset/<name>.yaml``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import soundfile as sf

from speechexp.data.emotion_splits import check_fractions, split_groups
from speechexp.data.preparer import METADATA_FILE, DatasetPreparer
from speechexp.data.progress import progress
from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic, write_json_atomic

log = logging.getLogger(__name__)

METADATA_COLUMNS = [
    "path", "speaker", "emotion", "text", "duration", "split", "sample_rate", "corpus",
    "corpus_emotion", "intensity", "gender", "text_id",
]


@dataclass(frozen=True)
class Parsed:
    """What a corpus file name says about its recording."""

    speaker: str
    corpus_emotion: str
    text: str
    text_id: str
    intensity: str = ""
    gender: str = ""
    key: str = ""  # identity used to drop duplicate copies of one recording


@dataclass
class Skipped:
    """What :meth:`CorpusPreparer.select` left out, to log once per index."""

    unparsed: list[Path] = field(default_factory=list)
    duplicates: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # corpus emotion -> files

    def log(self, root: Path, pattern: str) -> None:
        if self.unparsed:
            log.warning(
                "Skipped %d file(s) under %s whose names do not match %s, e.g. %s",
                len(self.unparsed), root, pattern, ", ".join(p.name for p in self.unparsed[:5]),
            )
        if self.duplicates:
            log.info("Skipped %d duplicate copies of the same recording", self.duplicates)
        if self.dropped:
            log.info(
                "Dropped %d file(s) whose emotion is not in label_map: %s",
                sum(self.dropped.values()), ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items())),
            )


def find_audio(root: Path, extensions: tuple[str, ...] = (".wav",)) -> list[Path]:
    """All files under ``root`` (recursively) with one of ``extensions`` (any case), sorted.

    Hidden files (e.g. macOS ``._name.wav`` resource forks) are ignored.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(extensions):
                found.append(Path(dirpath) / name)
    return sorted(found)


def _matches(speaker: str, wanted: list[Any]) -> bool:
    """True when ``speaker`` (e.g. 'ravdess_07') is named in ``wanted`` ('ravdess_07', '07' or 7)."""
    raw = speaker.split("_")[-1]
    for w in wanted:
        w = str(w)
        if w == speaker or w == raw or (w.isdigit() and raw.isdigit() and int(w) == int(raw)):
            return True
    return False


@dataclass
class CorpusPreparer(DatasetPreparer):
    """Base for corpus indexers; subclasses set ``name``, ``pattern`` and :meth:`parse`.

    Fields: ``root`` (the corpus folder; required), ``label_map`` (corpus emotion ->
    label or null; None keeps corpus names), ``split_by`` ('speaker' or 'text'),
    ``val_speakers``/``test_speakers`` (explicit held-out speakers, else fractions),
    ``val_fraction``/``test_fraction`` and ``seed``.
    """

    root: str | None = None
    label_map: dict[str, str | None] | None = None
    split_by: str = "speaker"
    val_speakers: list[Any] | None = None
    test_speakers: list[Any] | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    name: ClassVar[str] = "corpus"
    corpus: ClassVar[str] = "corpus"
    pattern: ClassVar[str] = ""
    columns: ClassVar[list[str]] = METADATA_COLUMNS  # of metadata.csv

    def __post_init__(self) -> None:
        check_fractions(self.val_fraction, self.test_fraction)
        if self.root is not None:
            self.root = str(Path(str(self.root)).expanduser().resolve())

    def parse(self, stem: str) -> Parsed | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def keep(self, parsed: Parsed) -> bool:
        """Whether a parsed file belongs in the dataset (subclasses filter, e.g. song)."""
        return True

    def check_requirements(self) -> None:
        """Refuse a missing corpus folder, an unknown ``split_by``, a folder with no file
        named like the corpus, a ``label_map`` that keeps none or held-out speakers the copy
        lacks, in one sentence; run before a run starts too
        (:func:`speechexp.config.compatibility.check_dataset_requirements`). Reads names only:
        the audio itself is read when the corpus is indexed."""
        self._check_settings()
        kept, _ = self.select()
        self._assign_splits([{"speaker": parsed.speaker, "text_id": parsed.text_id} for _, parsed, _ in kept])

    def _check_settings(self) -> None:
        """The checks :meth:`index` needs first: a corpus folder to walk and a known ``split_by``."""
        if self.root is None:
            raise SpeechexpError(
                f"No {self.corpus} folder given; pass dataset.root=DIR pointing at your copy of {self.corpus}."
            )
        if not Path(self.root).is_dir():
            raise SpeechexpError(
                f"{self.corpus} folder {self.root} does not exist; pass dataset.root=DIR with the corpus folder."
            )
        if self.split_by not in ("speaker", "text"):
            raise SpeechexpError(
                f"dataset.preparer.split_by={self.split_by!r} is not supported; use 'speaker' or 'text'."
            )

    def prepare(self, data_dir: str | os.PathLike) -> Path:
        """Check ``root`` and ``split_by``, then index into ``data_dir`` (see DatasetPreparer);
        indexing refuses what :meth:`check_requirements` would, in the same sentences."""
        self._check_settings()
        return super().prepare(data_dir)

    def select(self) -> tuple[list[tuple[Path, Parsed, str]], Skipped]:
        """The files under ``root`` the dataset keeps, each with what its name says and its
        label, and what was skipped; from the names alone (no audio is read). One sentence
        when no file is named like the corpus or ``label_map`` keeps none."""
        root = Path(self.root)
        files = find_audio(root)
        skipped = Skipped()
        seen: set[str] = set()
        parsed_any = False
        kept = []
        for path in files:
            parsed = self.parse(path.stem)
            if parsed is None:
                skipped.unparsed.append(path)
                continue
            parsed_any = True
            if not self.keep(parsed):
                continue
            if parsed.key in seen:
                skipped.duplicates += 1
                continue
            seen.add(parsed.key)
            label = self._label(parsed.corpus_emotion)
            if label is None:
                skipped.dropped[parsed.corpus_emotion] = skipped.dropped.get(parsed.corpus_emotion, 0) + 1
                continue
            kept.append((path, parsed, label))
        if not parsed_any:
            raise SpeechexpError(
                f"Found no {self.corpus} audio in {root} ({len(files)} .wav files, none named like "
                f"{self.pattern}); pass dataset.root=DIR pointing at the {self.corpus} folder."
            )
        if not kept:
            raise SpeechexpError(
                f"No usable {self.corpus} files remain in {root} after applying label_map; "
                "map some of the corpus emotions in dataset.preparer.label_map."
            )
        return kept, skipped

    def index(self) -> list[dict[str, Any]]:
        """Rows (dicts with :data:`METADATA_COLUMNS`) for every usable file under ``root``."""
        kept, skipped = self.select()
        unreadable: list[Path] = []
        rows = []
        for path, parsed, label in progress(kept, len(kept), f"Indexing {self.corpus}"):
            try:
                info = sf.info(str(path))
            except Exception:
                unreadable.append(path)
                continue
            rows.append({
                "path": str(path.resolve()), "speaker": parsed.speaker, "emotion": label,
                "text": parsed.text, "duration": round(info.frames / info.samplerate, 4),
                "split": "", "sample_rate": int(info.samplerate), "corpus": self.corpus,
                "corpus_emotion": parsed.corpus_emotion, "intensity": parsed.intensity,
                "gender": parsed.gender, "text_id": parsed.text_id,
            })
        skipped.log(Path(self.root), self.pattern)
        if unreadable:
            log.warning(
                "Skipped %d unreadable audio file(s), e.g. %s",
                len(unreadable), ", ".join(str(p) for p in unreadable[:5]),
            )
        if not rows:
            raise SpeechexpError(
                f"None of the {len(kept)} {self.corpus} files kept in {self.root} is readable audio; "
                "check the copy (e.g. re-extract its archive)."
            )
        self._assign_splits(rows)
        return rows

    def _label(self, corpus_emotion: str) -> str | None:
        if self.label_map is None:
            return corpus_emotion
        return self.label_map.get(corpus_emotion)

    def _assign_splits(self, rows: list[dict[str, Any]]) -> None:
        group_key = "speaker" if self.split_by == "speaker" else "text_id"
        groups = sorted({r[group_key] for r in rows})
        if self.split_by == "speaker" and (self.val_speakers or self.test_speakers):
            val, test = self.val_speakers or [], self.test_speakers or []
            assignment = {g: "test" if _matches(g, test) else "val" if _matches(g, val) else "train" for g in groups}
            for wanted, name in ((val, "val"), (test, "test")):
                missing = [w for w in wanted if not any(_matches(g, [w]) for g in groups)]
                if missing:
                    raise SpeechexpError(
                        f"{name}_speakers {missing} are not speakers of the {self.corpus} copy in "
                        f"{self.root}; use some of {groups[:10]}."
                    )
        else:
            assignment = split_groups(groups, self.val_fraction, self.test_fraction, self.seed)
        for r in rows:
            r["split"] = assignment[r[group_key]]

    def build(self, folder: Path) -> None:
        """Index ``root`` and write ``metadata.csv`` and ``summary.json`` into ``folder``."""
        rows = self.index()
        summary: dict[str, Any] = {"corpus": self.corpus, "root": self.root}
        for split in ("train", "val", "test"):
            part = [r for r in rows if r["split"] == split]
            summary[split] = {
                "utterances": len(part), "speakers": sorted({r["speaker"] for r in part}),
                "emotions": {e: sum(r["emotion"] == e for r in part) for e in sorted({r["emotion"] for r in rows})},
            }
        write_json_atomic(folder / "summary.json", summary)
        write_csv_atomic(folder / METADATA_FILE, rows, self.columns)
        log.info("Indexed %d %s files: %s", len(rows), self.corpus,
                 {s: summary[s]["utterances"] for s in ("train", "val", "test")})
