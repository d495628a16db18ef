"""CPU seconds of this process and all its children, for the benchmarks that compare a Dask path
with a single process (``bench/ingest_clean.py``, ``bench/features_augment.py``)."""
from __future__ import annotations

import psutil


def tree_cpu() -> float:
    """CPU seconds used so far by this process and all its children (pool processes, and a
    LocalCluster's worker processes; its scheduler runs in this process)."""
    procs = [psutil.Process()]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total
