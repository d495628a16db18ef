"""``runs/<id>/trace.json``: the run on one timeline, in the Chrome trace format (Perfetto,
chrome://tracing).

Process 1 holds one track per Dask worker with the prepare tasks, from the scheduler's task
stream (``Client.get_task_stream``: each task's compute and transfer start/stop); process 2 holds
one track per rank with the spans the rank wrote (``models.telemetry``: data wait, compute,
gradient exchange, apply, checkpoint, validation, evaluation, export), and a track ``job`` for the
launcher's phases. Every timestamp is wall-clock microseconds (``time.time()`` on each machine,
as Dask's task stream and ``tf.timestamp`` give them).

The ranks sample their steps (a window of steps every so often, see ``models.telemetry``) and the
task stream is capped at :data:`MAX_TASK_EVENTS`, so a long run's trace stays small.
"""
from __future__ import annotations

import json
from pathlib import Path

from dask.utils import key_split

#: task-stream events kept (the newest): the scheduler keeps 100,000 tasks at most anyway
MAX_TASK_EVENTS = 50_000
WORKERS_PID, RANKS_PID = 1, 2


def _meta(pid: int, tid: int | None, kind: str, name: str) -> dict:
    event = {"ph": "M", "pid": pid, "name": kind, "args": {"name": name}}
    return event | ({"tid": tid} if tid is not None else {})


def task_events(task_stream: list[dict]) -> list[dict]:
    """One complete event per compute or transfer of each task, one track (tid) per worker."""
    workers = sorted({t["worker"] for t in task_stream if "worker" in t})
    tids = {w: i + 1 for i, w in enumerate(workers)}
    events = [_meta(WORKERS_PID, None, "process_name", "Dask workers (prepare)")]
    events += [_meta(WORKERS_PID, tid, "thread_name", f"worker {w}") for w, tid in tids.items()]
    spans = []
    for task in task_stream:
        if task.get("worker") not in tids:
            continue
        name = key_split(task["key"])
        for ss in task.get("startstops", ()):
            spans.append({"name": name if ss["action"] == "compute" else f"{ss['action']} {name}",
                          "cat": ss["action"], "ph": "X", "pid": WORKERS_PID, "tid": tids[task["worker"]],
                          "ts": round(ss["start"] * 1e6), "dur": max(round((ss["stop"] - ss["start"]) * 1e6), 1),
                          "args": {"key": str(task["key"])}})
    spans.sort(key=lambda e: e["ts"])
    return events + spans[-MAX_TASK_EVENTS:]


def rank_events(span_dir: Path) -> list[dict]:
    """The ranks' span files (``rank-N.jsonl``, one complete event a line) as tracks of process 2."""
    events = [_meta(RANKS_PID, None, "process_name", "Horovod ranks (training)")]
    for path in sorted(Path(span_dir).glob("rank-*.jsonl"), key=lambda p: int(p.stem.split("-")[1])):
        rank = int(path.stem.split("-")[1])
        events.append(_meta(RANKS_PID, rank + 1, "thread_name", f"rank {rank}"))
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    events.append({**json.loads(line), "pid": RANKS_PID, "tid": rank + 1})
                except json.JSONDecodeError:   # the last line of a killed rank
                    continue
    return events


def phase_events(phases: list[tuple[str, float, float]]) -> list[dict]:
    """The launcher's phases ``(name, start, stop)`` (wall seconds) on a track ``job``."""
    return [_meta(RANKS_PID, 0, "thread_name", "job")] + [
        {"name": name, "cat": "phase", "ph": "X", "pid": RANKS_PID, "tid": 0, "ts": round(start * 1e6),
         "dur": max(round((stop - start) * 1e6), 1)} for name, start, stop in phases]


def write(path: Path, events: list[dict], metadata: dict) -> Path:
    """Write ``{"traceEvents": [...]}`` (compact JSON) to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms", "otherData": metadata},
                              separators=(",", ":")))
    tmp.replace(path)
    return path
