"""Reports you can look at: ``report.html`` (self-contained: images and audio embedded,
no network) and ``report.md`` for a run dir or a multirun folder."""

from __future__ import annotations

import os
from pathlib import Path

from speechexp.errors import SpeechexpError
from speechexp.runs.plan import RESULTS_FILE, SUPERSEDED_DIR


def is_run_dir(path: Path) -> bool:
    return (path / RESULTS_FILE).is_file()


def write_report(path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``path``, a run dir (it holds a
    ``results.json``) or a multirun folder (its jobs do); return their paths."""
    path = Path(path)
    if not path.is_dir():
        raise SpeechexpError(f"{path} is not a folder; pass a run dir or a multirun folder (outputs/<task>/...).")
    if is_run_dir(path):
        from speechexp.reports.run_page import write_run_report  # noqa: PLC0415

        return write_run_report(path)
    if any(SUPERSEDED_DIR not in p.relative_to(path).parts for p in path.rglob(RESULTS_FILE)):
        from speechexp.reports.sweep_page import write_sweep_report  # noqa: PLC0415

        return write_sweep_report(path)
    raise SpeechexpError(f"No {RESULTS_FILE} in or under {path}; pass a run dir or a multirun folder.")
