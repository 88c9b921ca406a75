"""torch threads per job, so that parallel jobs never oversubscribe the cores."""

from __future__ import annotations

import logging
import os

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from speechexp.runs.entry import in_multirun

log = logging.getLogger("speechexp")


def threads_per_job(cfg: DictConfig) -> int | None:
    """torch threads for this job: ``threads`` when set; in a parallel multirun, the cores
    divided by the launcher's parallel jobs (joblib's ``n_jobs``, submitit's
    ``cpus_per_task``), so that jobs x threads never exceeds the cores; else torch's default."""
    if cfg.get("threads"):
        return int(cfg.threads)
    if not in_multirun():
        return None
    launcher, cores = HydraConfig.get().launcher, len(os.sched_getaffinity(0))
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return None
    n_jobs = int(n_jobs) if n_jobs > 0 else max(1, cores + 1 + int(n_jobs))  # joblib: -1 = all cores
    return max(1, cores // n_jobs)


def set_threads(cfg: DictConfig) -> None:
    threads = threads_per_job(cfg)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        log.info("Using %d torch thread(s) per job.", threads)
