"""A labelled folder of the user's own recordings: ``transcripts.csv`` beside the audio.

``transcripts.csv`` has ``path`` (relative to the folder, or absolute) and ``text``, and
optionally ``emotion``, ``speaker`` and ``source`` (other columns are ignored):

    path,text,emotion,source
    mic/0001.wav,Where is the bag?,sad,mic
    phone/0002.flac,the red cup,,phone

Audio of any rate and any format soundfile reads stays where it is (``metadata.csv`` holds
absolute paths; the datamodule resamples). ``source`` defaults to the first folder of
``path`` (else the folder's own name), ``speaker`` to the source. Transcripts are
normalised as the tokenizer reads them (lowercase letters, space, apostrophe; umlauts
kept for the checkpoint's tokenizer to spell). A row without an emotion is kept without a
label: scored for CER/WER, left out of the emotion metrics.

By default every row is a test row, since the folder is for evaluating a checkpoint
(``speechexp-eval ckpt_path=CKPT dataset=labelled_folder dataset.root=DIR``, with CER/WER
overall and per ``source``); ``split_by=speaker|text`` splits it like a corpus instead.
The folder name hashes ``transcripts.csv``, so an edited file is indexed again.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import soundfile as sf

from speechexp.data.corpora.base import METADATA_COLUMNS as CORPUS_COLUMNS
from speechexp.data.corpora.base import CorpusPreparer
from speechexp.data.text import CharTokenizer
from speechexp.errors import SpeechexpError

TRANSCRIPTS = "transcripts.csv"
FORMAT = "(path,text[,emotion,speaker,source])"
METADATA_COLUMNS = [*CORPUS_COLUMNS, "source"]
SPLITS = ("none", "speaker", "text")
# every character the project's tokenizers spell; a checkpoint's tokenizer narrows it further
_NORMALIZER = CharTokenizer(umlauts="keep")


@dataclass
class LabelledFolderPreparer(CorpusPreparer):
    """Index ``root/transcripts.csv`` into ``metadata.csv``: every row in split ``test``
    (``split_by='none'``, the default) or split like a corpus (``'speaker'``, ``'text'``,
    with the :class:`CorpusPreparer` fractions and seed). ``label_map`` renames emotions
    (a name mapped to null leaves its rows unlabelled)."""

    split_by: str = "none"
    name: ClassVar[str] = "labelled_folder"
    corpus: ClassVar[str] = "labelled_folder"
    columns: ClassVar[list[str]] = METADATA_COLUMNS

    def transcripts(self) -> Path:
        """``root/transcripts.csv``; one sentence when there is no root or no such file."""
        if self.root is None:
            raise SpeechexpError(f"No labelled folder given; pass dataset.root=DIR, a folder with a "
                                 f"{TRANSCRIPTS} {FORMAT}.")
        path = Path(self.root) / TRANSCRIPTS
        if not path.is_file():
            raise SpeechexpError(f"{path} does not exist; pass dataset.root=DIR, a folder with a {TRANSCRIPTS} "
                                 f"{FORMAT}.")
        return path

    def fingerprint_fields(self) -> dict[str, Any]:
        """The fields plus the sha256 of ``transcripts.csv``: an edited file is a new dataset."""
        digest = hashlib.sha256(self.transcripts().read_bytes()).hexdigest()
        return {**super().fingerprint_fields(), "transcripts_sha256": digest}

    def check_requirements(self) -> None:
        """Refuse a folder without ``transcripts.csv``, an unknown ``split_by`` or a bad row
        in one sentence; run before a run starts too
        (:func:`speechexp.config.compatibility.check_dataset_requirements`), so it indexes
        every row (``sf.info`` of each file: about 0.1 ms each once cached)."""
        self._check_settings()
        self.index()

    def _check_settings(self) -> None:
        self.transcripts()
        if self.split_by not in SPLITS:
            raise SpeechexpError(f"dataset.preparer.split_by={self.split_by!r} is not supported; use "
                                 f"{', '.join(repr(s) for s in SPLITS)}.")

    def index(self) -> list[dict[str, Any]]:
        """The metadata rows, checked: one sentence for a missing column, an empty transcript
        or a missing or unreadable audio file."""
        path = self.transcripts()
        with path.open(newline="", encoding="utf-8-sig") as handle:
            listed = list(csv.DictReader(handle))
        columns = set(listed[0]) if listed else set()
        missing = [c for c in ("path", "text") if c not in columns]
        if missing or not listed:
            raise SpeechexpError(f"{path} needs a header with path and text and at least one row "
                                 f"(missing: {', '.join(missing) or 'rows'}); add them.")
        rows = []
        for number, row in enumerate(listed, start=2):  # line numbers as an editor shows them
            rows.append(self._row(path, number, {k: (v or "").strip() for k, v in row.items() if k is not None}))
        if self.split_by != "none":
            self._assign_splits(rows)
        return rows

    def _row(self, transcripts: Path, number: int, row: dict[str, str]) -> dict[str, Any]:
        where = f"{transcripts} line {number}"
        audio = Path(self.root) / row["path"]
        try:
            info = sf.info(str(audio))
        except Exception:  # noqa: BLE001 - soundfile raises several kinds for missing or unreadable files
            raise SpeechexpError(f"{where} names {row['path']}, which is missing or not readable audio; fix the "
                                 "path or remove the row.") from None
        text = _NORMALIZER.normalize(row["text"])
        if not text:
            raise SpeechexpError(f"{where} has no letters in its text ({row['text']!r}); write what is said or "
                                 "remove the row.")
        parts = Path(row["path"]).parts
        source = row.get("source") or (parts[0] if len(parts) > 1 and not Path(row["path"]).is_absolute()
                                       else Path(self.root).name)
        corpus_emotion = row.get("emotion", "").lower()
        return {
            "path": str(audio.resolve()), "speaker": row.get("speaker") or source,
            "emotion": (self._label(corpus_emotion) or "") if corpus_emotion else "", "text": text,
            "duration": round(info.frames / info.samplerate, 4), "split": "test",
            "sample_rate": int(info.samplerate), "corpus": self.corpus, "corpus_emotion": corpus_emotion,
            "intensity": "", "gender": row.get("gender", ""), "text_id": text, "source": source,
        }
