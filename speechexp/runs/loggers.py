"""Loggers that survive a resume."""

from __future__ import annotations

import csv

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


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


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed run appends to ``metrics.csv`` instead
    of deleting the epochs logged before the interruption."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
