"""Progress of the long data passes (synthesis, corpus indexing, speaker statistics).

On a terminal: a tqdm bar with rate and ETA. In a log (stderr not a terminal, e.g. a
SLURM job or a CI log): a plain line every ``interval`` seconds and one at the end, in
tqdm's own format, so the log stays readable.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

log = logging.getLogger("speechexp.progress")
T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str, interval: float = 10.0) -> Iterator[T]:
    """Yield ``items`` while showing ``description: n/total [elapsed<eta, rate]``."""
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=description, unit="it", dynamic_ncols=True, leave=False)
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= interval and done < total:
            log.info(tqdm.format_meter(done, total, now - start, prefix=description, ncols=0))
            last = now
    if total:
        log.info(tqdm.format_meter(done, total, time.monotonic() - start, prefix=description, ncols=0))
