"""The Dask client: the only module that starts clusters or touches ``distributed.Client``."""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from distributed import Client, LocalCluster

from pipeline.config import ClusterConfig


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def local_client(cfg: ClusterConfig, log=print) -> Iterator[Client]:
    """A ``LocalCluster`` (one worker per core unless ``cfg.workers``) with the dashboard on."""
    workers = cfg.workers or default_workers()
    # Each P2P shuffle (the split's sort) logs two scheduler WARNINGs that are routine, not trouble.
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    with LocalCluster(n_workers=workers, threads_per_worker=cfg.threads_per_worker, processes=True,
                      dashboard_address=cfg.dashboard_address, memory_limit=cfg.memory_limit) as cluster, \
            Client(cluster) as client:
        log(f"Dask: {workers} workers x {cfg.threads_per_worker} thread(s); dashboard {client.dashboard_link}")
        yield client
