"""Prepared dataset folders: one folder per dataset configuration, written atomically.

A preparer is a dataclass whose fields define the data. ``prepare(data_dir)`` returns
``data_dir/<name>-<fingerprint>/`` holding ``metadata.csv`` (and whatever audio it
names). The fingerprint hashes the fields, so the same config reuses the folder and a
different config gets its own. The folder is built under a temporary name and renamed
into place only when complete: an interrupted prepare leaves no half-built dataset, and
the next run builds it again from scratch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator

import filelock

from speechexp.errors import SpeechexpError

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.csv"
LOCK_TIMEOUT_S = 3600.0  # how long a run waits for another process building the same dataset


def lock_path(target: Path) -> Path:
    """A lock file for ``target`` kept in the temp dir, so data folders stay clean."""
    digest = hashlib.sha1(str(target.resolve()).encode("utf-8")).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "speechexp-locks"
    folder.mkdir(exist_ok=True)
    return folder / f"{digest}.lock"


@contextlib.contextmanager
def exclusive_lock(path: Path, target: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while inside, waiting at most ``timeout`` seconds
    for another process building ``target`` (the OS releases the lock if that process dies)."""
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("Waiting for another process that is preparing %s", target)
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise SpeechexpError(
                f"Another process has been preparing {target} for over {timeout:.0f} s (lock {path}); "
                "let it finish, or stop it and run the command again."
            ) from None
    try:
        yield
    finally:
        lock.release()


class DatasetPreparer(ABC):
    """Base class for dataset preparers (subclasses are dataclasses).

    Subclasses set ``name`` and implement :meth:`build`.
    """

    name: str = "dataset"

    def fingerprint_fields(self) -> dict[str, Any]:
        """The parameters that define the data; hashed into the folder name."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    def fingerprint(self) -> str:
        """A short stable hash of :meth:`fingerprint_fields`."""
        payload = json.dumps(self.fingerprint_fields(), sort_keys=True, default=str)
        return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:10]

    def folder(self, data_dir: str | os.PathLike) -> Path:
        """Where this configuration's dataset lives under ``data_dir``."""
        return Path(data_dir) / f"{self.name}-{self.fingerprint()}"

    def is_prepared(self, data_dir: str | os.PathLike) -> bool:
        """Whether this configuration's folder under ``data_dir`` holds its metadata (the
        build moves a folder into place only with it), so :meth:`prepare` reuses it."""
        return (self.folder(data_dir) / METADATA_FILE).is_file()

    def prepare(self, data_dir: str | os.PathLike) -> Path:
        """Build the dataset folder unless it already exists; return its path.

        Concurrent runs (a parallel sweep) wait on a lock file, so one builds and the
        others reuse.
        """
        target = self.folder(data_dir)
        if self.is_prepared(data_dir):
            log.info("Reusing prepared dataset %s", target)
            return target
        with exclusive_lock(lock_path(target), target):
            if self.is_prepared(data_dir):  # another process built it meanwhile
                log.info("Reusing prepared dataset %s", target)
                return target
            made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                return self._build_atomically(target)
            except BaseException:
                for folder in made:  # a failed first build leaves no empty data folder behind (deepest first)
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                raise

    def _build_atomically(self, target: Path) -> Path:
        self._remove_stale_builds(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        try:
            self.build(staging)
            (staging / "preparer.json").write_text(
                json.dumps({"name": self.name, "class": type(self).__qualname__,
                            "fields": self.fingerprint_fields()}, indent=2, default=str) + "\n"
            )
            if not (staging / METADATA_FILE).is_file():
                raise RuntimeError(f"{type(self).__name__}.build wrote no {METADATA_FILE}")
            if target.exists():  # an incomplete folder from an older layout: replace it
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("Prepared dataset %s", target)
        return target

    @staticmethod
    def _remove_stale_builds(target: Path) -> None:
        """Delete partial builds left by interrupted runs of the same configuration."""
        for stale in target.parent.glob(f".{target.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)

    @abstractmethod
    def build(self, folder: Path) -> None:
        """Write the dataset into the empty ``folder``, ending with ``metadata.csv``.

        Paths in ``metadata.csv`` are relative to ``folder`` for generated audio, or
        absolute for audio that stays in an external corpus folder.
        """
