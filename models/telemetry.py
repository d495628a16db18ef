"""What a rank reports while it trains: live figures to the Dask scheduler, spans for the trace,
per-step TensorBoard scalars (rank 0).

``models.train`` hands each step's wall-clock marks (:func:`models.train.iterator_step`: step
start, batch arrived, local gradients ready, gradients exchanged, update applied) and its loss to
:meth:`Telemetry.step`, which only appends them to a deque. A background thread wakes every
``$DCPIPE_MONITOR_INTERVAL`` seconds (default 1) and, off the step's critical path:

- sends the means since its last report to the scheduler as one Dask event
  (``distributed.Client(address).log_event(TOPIC, {...})``), read there by
  ``pipeline.monitor.plugin``;
- appends sampled spans to ``runs/<id>/trace/rank-N.jsonl``: every step of a window of
  :data:`WINDOW_STEPS` steps every :data:`WINDOW_PERIOD` seconds, and every other span
  (checkpoint, validation, evaluation, export) always;
- on rank 0, writes TensorBoard scalars: per step the loss and the data wait, per report the
  learning rate and bytes sent a step.

The launcher sets ``DCPIPE_MONITOR_ADDRESS`` (the scheduler) and ``DCPIPE_RUN_ID``; without an
address only the spans and scalars are written; ``DCPIPE_MONITOR=0`` turns it all off.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

TOPIC = "dcpipe-telemetry"        # pipeline.monitor.TOPIC
ADDRESS_ENV, RUN_ENV, TLS_ENV = "DCPIPE_MONITOR_ADDRESS", "DCPIPE_RUN_ID", "DCPIPE_MONITOR_TLS"
SWITCH_ENV, INTERVAL_ENV = "DCPIPE_MONITOR", "DCPIPE_MONITOR_INTERVAL"
#: trace sampling: this many consecutive steps ...
WINDOW_STEPS = 20
#: ... every this many seconds (about 1 MB of trace a rank an hour)
WINDOW_PERIOD = 30.0
#: the spans of a step, between consecutive marks
STEP_SPANS = ("data wait", "compute", "gradient exchange", "apply")


def enabled(environ=os.environ) -> bool:
    return environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


class Telemetry:
    """One rank's reporter; a disabled one (``enabled=False``) does nothing at all."""

    def __init__(self, *, rank: int, size: int, run_id: str, span_dir: Path | None, address: str | None = None,
                 tls: str | None = None, interval: float = 1.0, steps_total: int = 0, epochs: int = 0,
                 bytes_per_step: int = 0, writer=None, learning_rate=None, enabled: bool = True):
        self.rank, self.size, self.run_id, self.enabled = rank, size, run_id, enabled
        self.address, self.tls, self.interval = address, tls, interval
        self.steps_total, self.epochs, self.bytes_per_step = steps_total, epochs, bytes_per_step
        self.writer, self.learning_rate = writer, learning_rate
        self.span_path = Path(span_dir) / f"rank-{rank}.jsonl" if span_dir and enabled else None
        self._steps: collections.deque = collections.deque()
        self._messages: collections.deque = collections.deque()
        self._spans: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._client = None
        self._window = (-WINDOW_PERIOD, 0)          # (start, steps recorded in it)
        self._epoch = 0
        self._thread = None
        if enabled:
            self._thread = threading.Thread(target=self._loop, name="dcpipe-telemetry", daemon=True)
            self._thread.start()

    @classmethod
    def from_env(cls, *, rank: int, size: int, run_dir: Path, environ=os.environ, **kw) -> "Telemetry":
        """The reporter the launcher's environment asks for."""
        return cls(rank=rank, size=size, run_id=environ.get(RUN_ENV) or Path(run_dir).name,
                   span_dir=Path(run_dir) / "trace", address=environ.get(ADDRESS_ENV) or None,
                   tls=environ.get(TLS_ENV) or None, interval=float(environ.get(INTERVAL_ENV, "1")),
                   enabled=enabled(environ), **kw)

    # -- the training loop's calls (cheap: appends only) --------------------------------------

    def step(self, marks, loss: float, global_step: int, epoch: int) -> None:
        """One finished step: its five wall-clock marks (seconds), loss, global step, epoch (1-based)."""
        if self.enabled:
            self._steps.append((marks, loss, global_step, epoch))

    def epoch_end(self, record: dict) -> None:
        if self.enabled:
            self._messages.append({"kind": "epoch", "epoch": int(record["epoch"]),
                                   **{k: float(record[k]) for k in ("train_loss", "val_loss", "val_accuracy")}})

    def phase(self, name: str) -> None:
        """Rank 0 says which phase the run is in (training, evaluation, export)."""
        if self.enabled and self.rank == 0:
            self._messages.append({"kind": "phase", "phase": name, "t": time.time()})

    @contextlib.contextmanager
    def span(self, name: str):
        """A span on this rank's trace track (checkpoint, validation, ...)."""
        start = time.time()
        try:
            yield
        finally:
            if self.enabled:
                self._spans.append(_event(name, "rank", start, time.time()))

    def close(self) -> None:
        """Send what is left, stop the thread, close the client."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self._thread = None

    # -- the background thread --------------------------------------------------------------

    def _loop(self) -> None:
        if self.address:
            self._connect()
        while not self._stop.wait(self.interval):
            self._report()
        self._report()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close(timeout=5)

    def _connect(self) -> None:
        try:
            from distributed import Client
            security = None
            if self.tls:
                from distributed.security import Security
                ca, cert, key = self.tls.split(os.pathsep)
                security = Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,
                                    require_encryption=True)
            self._client = Client(self.address, timeout=60, set_as_default=False, security=security,
                                  name=f"dcpipe-rank-{self.rank}")
        except Exception as exc:   # the run goes on without live figures
            print(f"[telemetry] rank {self.rank}: cannot reach the Dask scheduler at {self.address} "
                  f"({type(exc).__name__}: {exc}); no live figures from this rank", file=sys.stderr, flush=True)

    def _send(self, message: dict) -> None:
        if self._client is None:
            return
        try:
            self._client.log_event(TOPIC, {"run": self.run_id, "rank": self.rank, **message})
        except Exception as exc:
            print(f"[telemetry] rank {self.rank}: the scheduler stopped answering ({type(exc).__name__}); "
                  "no more live figures", file=sys.stderr, flush=True)
            self._client = None

    def _report(self) -> None:
        steps = [self._steps.popleft() for _ in range(len(self._steps))]
        spans = [self._spans.popleft() for _ in range(len(self._spans))]
        if steps:
            self._send(self._figures(steps))
            spans += self._step_spans(steps)
            self._scalars(steps)
        for _ in range(len(self._messages)):
            self._send(self._messages.popleft())
        if spans and self.span_path is not None:
            self.span_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.span_path, "a") as out:
                out.write("".join(json.dumps(s, separators=(",", ":")) + "\n" for s in spans))

    def _figures(self, steps: list) -> dict:
        n = len(steps)
        mean = lambda i, j: float(sum(m[j] - m[i] for m, *_ in steps)) / n   # noqa: E731
        last_marks, _, global_step, epoch = steps[-1]
        return {"kind": "steps", "size": self.size, "t": float(last_marks[4]), "n": n, "step": int(global_step),
                "steps_total": int(self.steps_total), "epoch": int(epoch), "epochs": int(self.epochs),
                "step_s": mean(0, 4), "wait_s": mean(0, 1), "exchange_s": mean(2, 3),
                "bytes_per_step": int(self.bytes_per_step), "loss": float(sum(s[1] for s in steps)) / n,
                "lr": self._learning_rate()}

    def _step_spans(self, steps: list) -> list[dict]:
        out = []
        start, kept = self._window
        for marks, _, global_step, _ in steps:
            if marks[0] - start >= WINDOW_PERIOD:
                start, kept = marks[0], 0
            if kept < WINDOW_STEPS:
                kept += 1
                out += [_event(name, "step", marks[i], marks[i + 1], {"step": global_step})
                        for i, name in enumerate(STEP_SPANS)]
        self._window = (start, kept)
        return out

    def _learning_rate(self) -> float | None:
        try:
            return float(self.learning_rate()) if self.learning_rate else None
        except Exception:
            return None

    def _scalars(self, steps: list) -> None:
        if self.writer is None:
            return
        import tensorflow as tf
        with self.writer.as_default():
            for marks, loss, global_step, _ in steps:
                tf.summary.scalar("step/loss", loss, step=global_step)
                tf.summary.scalar("step/data_wait_ms", 1e3 * (marks[1] - marks[0]), step=global_step)
            last = steps[-1][2]
            lr = self._learning_rate()
            if lr is not None:
                tf.summary.scalar("step/learning_rate", lr, step=last)
            tf.summary.scalar("step/bytes_sent", self.bytes_per_step, step=last)


def _event(name: str, cat: str, start: float, stop: float, args: dict | None = None) -> dict:
    """A Chrome-trace complete event, wall-clock microseconds."""
    event = {"name": name, "cat": cat, "ph": "X", "ts": round(float(start) * 1e6),
             "dur": max(round((float(stop) - float(start)) * 1e6), 0)}
    return event | ({"args": args} if args else {})


def hparams(writer, values: dict, run_id: str) -> None:
    """The run's hyperparameters for TensorBoard's HParams tab (rank 0, once)."""
    try:
        from tensorboard.plugins.hparams import api as hp
    except ImportError:
        return
    with writer.as_default():
        hp.hparams(values, trial_id=run_id)
