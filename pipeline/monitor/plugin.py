"""The scheduler plugin that collects the ranks' reports: the latest figures per run and rank.

Messages arrive as Dask events on :data:`pipeline.monitor.TOPIC` (``SchedulerPlugin.log_event``
is called for every event), each a dict with ``kind``:

- ``phase``: ``{"run", "phase", "t"}``, from the launcher and rank 0 (prepare, rank start, training,
  evaluation, export, finished);
- ``steps``: ``{"run", "rank", "size", "t", "step", "steps_total", "epoch", "epochs", "n", "step_s",
  "wait_s", "exchange_s", "bytes_per_step", "loss", "lr"}``: the means over the ``n`` steps since
  the rank's last report;
- ``epoch``: ``{"run", "rank", "epoch", "train_loss", "val_loss", "val_accuracy"}``.
"""
from __future__ import annotations

import collections
import time

from distributed.diagnostics.plugin import SchedulerPlugin

from pipeline.monitor import PLUGIN, TOPIC

#: points kept per rank for the page's plots
HISTORY = 2000
#: runs kept (the oldest are dropped)
RUNS = 8


def new_run(run_id: str) -> dict:
    return {"run": run_id, "phase": "starting", "phase_since": time.time(), "phases": [], "ranks": {},
            "history": {}, "started_training": None, "eta_seconds": None}


def eta(run: dict) -> float | None:
    """Seconds of training left, from rank 0's pace since training started: steps left x seconds a
    step (validation included, as it was so far); None before two reports."""
    head = run["ranks"].get(0)
    if not head or run["started_training"] is None or head["step"] <= head.get("first_step", 0):
        return None
    done = head["step"] - head.get("first_step", 0)
    per_step = (head["t"] - run["started_training"]) / done
    return max(head["steps_total"] - head["step"], 0) * per_step


class MonitorPlugin(SchedulerPlugin):
    """Keeps ``runs[run_id]``: phase, ETA, per-rank latest figures and a bounded history."""

    name = PLUGIN
    idempotent = True

    def __init__(self):
        self.runs: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self.collector = None

    async def start(self, scheduler) -> None:
        from pipeline.monitor import prometheus
        self.collector = prometheus.register(self)

    async def close(self) -> None:
        from pipeline.monitor import prometheus
        prometheus.unregister(self.collector)
        self.collector = None

    def run(self, run_id: str) -> dict:
        if run_id not in self.runs:
            self.runs[run_id] = new_run(run_id)
            while len(self.runs) > RUNS:
                self.runs.popitem(last=False)
        return self.runs[run_id]

    def latest(self) -> dict | None:
        """The run that reported last."""
        return next(reversed(self.runs.values()), None)

    def log_event(self, topic: str, msg) -> None:
        if topic != TOPIC or not isinstance(msg, dict) or "run" not in msg:
            return
        run = self.run(str(msg["run"]))
        self.runs.move_to_end(run["run"])
        kind = msg.get("kind")
        if kind == "phase":
            run["phase"], run["phase_since"] = msg["phase"], msg.get("t", time.time())
            run["phases"].append((run["phase"], run["phase_since"]))
            if msg["phase"] == "training" and run["started_training"] is None:
                run["started_training"] = run["phase_since"]
        elif kind == "steps":
            rank = int(msg["rank"])
            previous = run["ranks"].get(rank, {})
            figures = {**previous, **msg, "rank": rank,
                       "steps_seen": previous.get("steps_seen", 0) + int(msg.get("n", 0)),
                       "first_step": previous.get("first_step", msg["step"] - int(msg.get("n", 0)))}
            run["ranks"][rank] = figures
            if rank == 0 and run["started_training"] is None:
                run["started_training"] = msg["t"] - msg.get("n", 0) * msg.get("step_s", 0.0)
            points = run["history"].setdefault(rank, collections.deque(maxlen=HISTORY))
            points.append({k: msg.get(k) for k in ("step", "t", "step_s", "wait_s", "exchange_s", "loss")})
            run["eta_seconds"] = eta(run)
        elif kind == "epoch":
            rank = int(msg["rank"])
            run["ranks"].setdefault(rank, {"rank": rank}).update(
                {k: msg[k] for k in ("epoch", "train_loss", "val_loss", "val_accuracy") if k in msg})

    def state(self) -> dict:
        """Everything as plain JSON: ``{"runs": [...]}``, newest last (``/dcpipe/state.json``)."""
        return {"runs": [{**{k: v for k, v in run.items() if k != "history"},
                          "ranks": [run["ranks"][r] for r in sorted(run["ranks"])]}
                         for run in self.runs.values()]}
