"""Reading and checking a prepared dataset's ``metadata.csv``."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable

from speechexp.data.preparer import METADATA_FILE
from speechexp.errors import SpeechexpError


def read_metadata(dataset_dir: str | os.PathLike, required: Iterable[str] = ()) -> list[dict[str, str]]:
    """Rows of ``dataset_dir/metadata.csv`` as dicts of strings.

    Raises:
        SpeechexpError: the folder or file is missing, or a required column is absent.
    """
    path = Path(dataset_dir) / METADATA_FILE
    if not path.is_file():
        raise SpeechexpError(
            f"{path} does not exist; run `speechexp-prepare` for this dataset or point "
            "paths.data_dir at a prepared dataset."
        )
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpeechexpError(f"{path} is unreadable ({exc}); delete the dataset folder to re-prepare it.") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise SpeechexpError(
            f"{path} lacks the column(s) {missing}; delete the dataset folder to re-prepare it."
        )
    return rows


def resolve_audio_path(dataset_dir: str | os.PathLike, value: str) -> Path:
    """Absolute path of an audio file named in metadata (relative paths are under the folder)."""
    path = Path(value)
    return path if path.is_absolute() else Path(dataset_dir) / path


def check_files_exist(dataset_dir: str | os.PathLike, rows: list[dict[str, str]], columns: Iterable[str]) -> None:
    """Raise SpeechexpError naming the first file listed in ``columns`` that is missing."""
    for row in rows:
        for column in columns:
            path = resolve_audio_path(dataset_dir, row[column])
            if not path.is_file():
                raise SpeechexpError(
                    f"{Path(dataset_dir) / METADATA_FILE} names {path}, which does not exist; "
                    "restore the file or delete the dataset folder to re-prepare it."
                )
