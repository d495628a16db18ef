"""What a Dask worker holds at its peak: RSS, the managed memory by task prefix and the rest
(unmanaged: the running tasks' temporaries, memory the allocator has not returned), sampled with
``client.run`` every ``every`` seconds from a thread. Used by ``bench/ingest_clean.py --breakdown``
to say where the worker memory goes, not only how much."""
from __future__ import annotations

import threading
from collections import Counter


def _snapshot(dask_worker) -> dict:
    """Runs on the worker: its RSS and the bytes and count of its in-memory task results by prefix."""
    import psutil
    from distributed.utils import key_split
    held, count = Counter(), Counter()
    for ts in list(dask_worker.state.tasks.values()):
        if ts.state == "memory":
            prefix = key_split(ts.key)
            held[prefix] += max(ts.nbytes or 0, 0)
            count[prefix] += 1
    try:
        import pyarrow as pa
        arrow = pa.total_allocated_bytes()
    except ImportError:
        arrow = 0
    return {"rss": psutil.Process().memory_info().rss, "held": dict(held), "count": dict(count), "arrow": arrow,
            "ready": len(dask_worker.state.ready), "executing": len(dask_worker.state.executing)}


class WorkerMemory:
    """Keeps, per worker, the snapshot taken at its highest RSS."""

    def __init__(self, client, every: float = 2.0):
        self.client, self.every, self.peaks = client, every, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                snaps = self.client.run(_snapshot)
            except Exception:          # a worker going away between samples is not the benchmark's result
                snaps = {}
            for addr, snap in snaps.items():
                if snap["rss"] > self.peaks.get(addr, {}).get("rss", -1):
                    self.peaks[addr] = snap
            self._stop.wait(self.every)

    def start(self) -> "WorkerMemory":
        self._thread.start()
        return self

    def stop(self) -> dict[str, dict]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def describe(peaks: dict[str, dict], top: int = 4) -> list[str]:
    """One line per worker: RSS, managed and unmanaged MiB at its peak, the largest prefixes held."""
    lines = []
    for addr, s in sorted(peaks.items()):
        managed = sum(s["held"].values())
        biggest = sorted(s["held"].items(), key=lambda kv: -kv[1])[:top]
        held = ", ".join(f"{k} {v / 2**20:.0f} MiB ({s['count'][k]})" for k, v in biggest)
        lines.append(f"{addr}: RSS {s['rss'] / 2**20:.0f} MiB = managed {managed / 2**20:.0f} + unmanaged "
                     f"{(s['rss'] - managed) / 2**20:.0f} (Arrow's pool {s['arrow'] / 2**20:.0f}); "
                     f"{s['ready']} ready, {s['executing']} executing; "
                     f"held: {held or 'nothing'}")
    return lines
