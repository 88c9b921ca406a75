"""Loggers that survive a resume."""

from __future__ import annotations

import csv
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from speechexp.io import write_csv_atomic


class _AppendingWriter(ExperimentWriter):
    """Keeps an existing ``metrics.csv`` and appends to it (a run that starts afresh finds
    its run dir already cleared, see :mod:`speechexp.runs.plan`)."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir=log_dir)
        if self._fs.isfile(self.metrics_file_path):  # columns already written: new ones extend them
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = next(csv.reader(handle), [])

    def _check_log_dir_exists(self) -> None:
        """(Lightning deletes an existing ``metrics.csv`` here.)"""

    def save(self) -> None:
        """Append the pending rows, first taking the columns from the file itself: another
        process may have written it since this writer was made (ddp_spawn trains and tests
        in processes that each get a copy of the parent's logger)."""
        if self.metrics and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                header = next(csv.reader(handle), [])
            self.metrics_keys = header + [key for key in self.metrics_keys if key not in header]
        super().save()


def is_test_metric(name: str) -> bool:
    """Whether a logged metric is a test result: a resume redoes training and validation
    past its checkpoint, never an earlier test, so every logger keeps those."""
    return name.startswith("test/")


def redone_by_resume(row: dict[str, str], step: int) -> bool:
    """Whether a ``metrics.csv`` row is training or validation work at global ``step`` or
    later (test rows stay: a continued run keeps the record of its earlier tests)."""
    logged_at = row.get("step") or ""
    is_test = any(key and is_test_metric(key) and value for key, value in row.items())
    return logged_at.isdigit() and int(logged_at) >= step and not is_test


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed run appends to ``metrics.csv`` instead
    of deleting the epochs logged before the interruption."""

    def forget_from_step(self, step: int) -> int:
        """Drop the training and validation rows logged at global ``step`` or later and
        return how many: a run resumed from a checkpoint taken at ``step`` logs that work
        again (a SIGKILL leaves the rows of the steps after the checkpoint)."""
        path = Path(self.experiment.metrics_file_path)
        if not path.is_file():
            return 0
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = [row for row in rows if not redone_by_resume(row, step)]
        if len(kept) < len(rows):
            write_csv_atomic(path, kept, header)
        return len(rows) - len(kept)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def hide_tensorboard_events_from_step(logger: TensorBoardLogger, step: int) -> None:
    """Make TensorBoard drop the events ``logger`` wrote at global ``step`` or later, as a
    resumed run logs that work again: a session restart at ``step`` in the event file is
    TensorBoard's own purge mark (what SummaryWriter's ``purge_step`` writes; the writer
    exists before the resume step is known, so the mark is added here). Test scalars past
    the mark are written again after it: a continued run keeps its earlier tests, as the CSV
    log does."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: PLC0415
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog  # noqa: PLC0415 - the [tensorboard] extra

    writer = logger.experiment
    writer.flush()
    logged = EventAccumulator(writer.get_logdir())
    logged.Reload()
    tests = [(tag, event.step, event.value) for tag in logged.Tags()["scalars"] if is_test_metric(tag)
             for event in logged.Scalars(tag) if event.step >= step]
    writer.file_writer.add_event(Event(step=step, session_log=SessionLog(status=SessionLog.START)))
    for tag, logged_at, value in tests:
        writer.add_scalar(tag, value, logged_at)
    writer.flush()
