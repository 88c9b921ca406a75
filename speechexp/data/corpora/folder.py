"""A labelled folder of the user's own recordings: ``transcripts.csv`` beside the audio.

``transcripts.csv`` has ``path`` (relative to the folder, or absolute) and ``text``, and
optionally ``emotion``, ``speaker`` and ``source`` (other columns are ignored). Audio of
any rate stays where it is. Every row is a test row: the folder is for evaluating a
checkpoint (``speechexp-eval ckpt_path=CKPT dataset=labelled_folder dataset.root=DIR``),
with CER/WER overall and per ``source``, and UAR over the rows that name an emotion.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import soundfile as sf

from speechexp.data.preparer import METADATA_FILE, DatasetPreparer
from speechexp.errors import SpeechexpError
from speechexp.io import write_csv_atomic

TRANSCRIPTS = "transcripts.csv"
METADATA_COLUMNS = ["path", "speaker", "emotion", "text", "duration", "split", "sample_rate", "source"]


@dataclass
class LabelledFolderPreparer(DatasetPreparer):
    """Index ``root/transcripts.csv`` into ``metadata.csv`` (split ``test``). The folder name
    hashes the transcripts, so an edited ``transcripts.csv`` is indexed again."""

    root: str | None = None
    name: ClassVar[str] = "labelled_folder"

    def __post_init__(self) -> None:
        if self.root is not None:
            self.root = str(Path(str(self.root)).expanduser().resolve())

    def transcripts(self) -> Path:
        if self.root is None:
            raise SpeechexpError("No folder given; pass dataset.root=DIR, a folder with a transcripts.csv "
                                 "(path,text[,emotion,speaker,source]).")
        path = Path(self.root) / TRANSCRIPTS
        if not path.is_file():
            raise SpeechexpError(f"{path} does not exist; pass dataset.root=DIR, a folder with a transcripts.csv "
                                 "(path,text[,emotion,speaker,source]).")
        return path

    def fingerprint_fields(self) -> dict[str, Any]:
        return {"root": self.root, "transcripts_sha256": hashlib.sha256(self.transcripts().read_bytes()).hexdigest()}

    def rows(self) -> list[dict[str, Any]]:
        """The metadata rows, checked: one sentence for a missing column or audio file."""
        path = self.transcripts()
        with path.open(newline="", encoding="utf-8") as handle:
            listed = list(csv.DictReader(handle))
        columns = set(listed[0]) if listed else set()
        missing = [c for c in ("path", "text") if c not in columns]
        if missing or not listed:
            raise SpeechexpError(f"{path} needs a header with path and text and at least one row "
                                 f"(missing: {', '.join(missing) or 'rows'}); add them.")
        rows = []
        for number, row in enumerate(listed, start=2):
            audio = Path(self.root) / row["path"]
            try:
                info = sf.info(str(audio))
            except Exception:  # noqa: BLE001 - soundfile raises several kinds for unreadable files
                raise SpeechexpError(f"{path} line {number} names {row['path']}, which is missing or not "
                                     "readable audio; fix the path or remove the row.") from None
            source = (row.get("source") or "").strip() or (Path(row["path"]).parts[0] if len(Path(row["path"]).parts) > 1
                                                           else Path(self.root).name)
            rows.append({
                "path": str(audio.resolve()), "speaker": (row.get("speaker") or "").strip() or source,
                "emotion": (row.get("emotion") or "").strip().lower(), "text": row["text"],
                "duration": round(info.frames / info.samplerate, 4), "split": "test",
                "sample_rate": int(info.samplerate), "source": source,
            })
        return rows

    def build(self, folder: Path) -> None:
        write_csv_atomic(folder / METADATA_FILE, self.rows(), METADATA_COLUMNS)
