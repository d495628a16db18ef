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


class PeakMemory:
    """Peak RSS of this process (a LocalCluster's scheduler runs here) and of each child process
    (its workers), sampled every ``every`` seconds by a thread between ``start()`` and ``stop()``."""

    def __init__(self, every: float = 0.1):
        import threading
        self.every, self.peaks, self._stop = every, {}, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    key = "scheduler+client" if p.pid == me.pid else f"worker {p.pid}"
                    self.peaks[key] = max(self.peaks.get(key, 0), p.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(self.every)

    def start(self) -> "PeakMemory":
        self._thread.start()
        return self

    def stop(self) -> dict[str, int]:
        """name -> peak bytes; worker processes that held under 200 MiB (helpers such as the
        multiprocessing resource tracker) are left out."""
        self._stop.set()
        self._thread.join()
        return {k: v for k, v in self.peaks.items() if k == "scheduler+client" or v >= 200 << 20}
