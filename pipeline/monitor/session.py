"""The launcher's side of the monitoring: the scheduler a run reports to, its phases, the progress
bar, and the run's ``trace.json`` and time breakdown.

:class:`Watch` holds a Dask client, either the one prepare used (the cluster stays up through
training) or one being started in a background thread for a run whose dataset is cached
(:func:`pipeline.cluster.monitor_client`; its address is chosen first, so the ranks start with
it while the scheduler comes up).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from pipeline.monitor import PLUGIN, ROUTE, TOPIC, trace
from models.telemetry import ADDRESS_ENV, RUN_ENV, TLS_ENV

#: the run's time breakdown, in order: (key in summary.json's ``time_breakdown``, boundary mark it ends at)
SEGMENTS = (("locate", "located"), ("cluster_start", "cluster_started"), ("prepare", "prepared"), ("setup", "launched"),
            ("rank_start", "train_start"), ("training", "train_end"), ("evaluation", "eval_end"),
            ("export", "export_end"), ("finish", "end"))


def breakdown(marks: dict[str, float]) -> dict[str, float]:
    """Seconds between consecutive wall-clock ``marks`` (``start`` first, then :data:`SEGMENTS`'
    boundaries; a missing boundary gives 0 s), so the parts add up to end - start."""
    out, last = {}, marks["start"]
    for key, boundary in SEGMENTS:
        at = marks.get(boundary, last)
        out[key] = round(max(at - last, 0.0), 2)
        last = max(at, last)
    return out


class Watch:
    """One job's monitoring; every method is a no-op once the client is known to be missing."""

    def __init__(self, client=None, *, pending: Future | None = None, address: str | None = None,
                 tls=None, log=print):
        self._client, self._pending, self.log = client, pending, log
        self.address = address or (client.scheduler.address if client is not None else None)
        self.tls = tls
        self._sent_phases: list[tuple[str, str, float]] = []
        if client is not None:
            self._install(client)

    @property
    def client(self):
        """The client, waiting for the background start if need be; None when it failed."""
        if self._client is None and self._pending is not None:
            try:
                self._client = self._pending.result(timeout=120)
                self._install(self._client)
            except Exception as exc:
                self.log(f"Dask: no scheduler for the dashboard ({type(exc).__name__}: {exc}); "
                         "training runs without live figures")
            self._pending = None
        return self._client

    def _install(self, client) -> None:
        """The monitor plugin on the scheduler (when it was not started with the preload) and the
        task stream recording from now on."""
        try:
            present = client.run_on_scheduler(lambda dask_scheduler: PLUGIN in dask_scheduler.plugins)
            if not present:
                from pipeline.monitor.plugin import MonitorPlugin
                client.register_plugin(MonitorPlugin())
                self.log(f"Dask: monitor plugin added to {client.scheduler.address}; the {ROUTE} page needs "
                         "the scheduler started with --preload pipeline.monitor.preload")
            client.get_task_stream(count=1)   # starts the scheduler's task-stream recording
        except Exception as exc:
            self.log(f"Dask: cannot add the monitor plugin to the scheduler ({type(exc).__name__}: {exc}); "
                     f"no {ROUTE} page or training metrics")
        link = client.dashboard_link
        if link:
            self.log(f"Dask: training figures on {link.rsplit('/', 1)[0]}{ROUTE} and /metrics")

    def rank_env(self, run_id: str) -> dict[str, str]:
        """What the ranks need to report (``models.telemetry``)."""
        env = {RUN_ENV: run_id}
        if not self.address and self.client is not None:
            self.address = self.client.scheduler.address
        if self.address:
            env[ADDRESS_ENV] = self.address
        if self.tls is not None:
            import os
            env[TLS_ENV] = os.pathsep.join(str(p) for p in (self.tls.ca_file, self.tls.cert, self.tls.key))
        return env

    def phase(self, run_id: str, name: str, wait: bool = True) -> None:
        """Tell the page which phase the run is in (``wait=False``: only if the client is up)."""
        client = self.client if wait or self._pending is None or self._pending.done() else None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.log_event(TOPIC, {"kind": "phase", "run": run_id, "phase": name, "t": time.time()})

    @contextlib.contextmanager
    def progress(self, run_id: str, log):
        """A tqdm bar (on stderr) of rank 0's steps while the ranks train, on a terminal only (a log
        file gets rank 0's one line an epoch); yields the ``log`` to use meanwhile (lines above it)."""
        if not sys.stderr.isatty():
            yield log
            return
        from tqdm import tqdm
        bar = tqdm(total=0, desc="training", unit="step", dynamic_ncols=True, leave=False)
        lock = threading.Lock()
        subscribed = False

        def update(event) -> None:
            msg = event[1]
            if isinstance(msg, dict) and msg.get("kind") == "steps" and msg.get("rank") == 0 \
                    and msg.get("run") == run_id:
                with lock:
                    bar.total = msg["steps_total"]
                    bar.n = msg["step"]
                    bar.set_postfix(epoch=f"{msg['epoch']}/{msg['epochs']}", loss=f"{msg['loss']:.4f}",
                                    step_ms=f"{1e3 * msg['step_s']:.1f}", refresh=False)
                    bar.refresh()

        def above(*args) -> None:
            with lock:
                bar.write(" ".join(str(a) for a in args))

        def subscribe() -> None:
            nonlocal subscribed
            client = self.client
            if client is not None:
                client.subscribe_topic(TOPIC, update)
                subscribed = True

        threading.Thread(target=subscribe, name="dcpipe-progress", daemon=True).start()
        try:
            yield above
        finally:
            if subscribed:
                with contextlib.suppress(Exception):
                    self._client.unsubscribe_topic(TOPIC)
            bar.close()

    def write_trace(self, run_dir: Path, marks: dict[str, float]) -> Path | None:
        """``run_dir/trace.json``: the prepare tasks since ``marks['start']``, the ranks' spans, the
        job's phases (the time breakdown's parts)."""
        tasks = []
        client = self.client
        if client is not None and marks.get("prepared", 0) > marks.get("cluster_started", 0):
            with contextlib.suppress(Exception):
                tasks = client.get_task_stream(start=marks["start"])
        phases, last = [], marks["start"]
        for key, boundary in SEGMENTS:
            at = marks.get(boundary, last)
            if at > last:
                phases.append((key.replace("_", " "), last, at))
                last = at
        events = trace.task_events(tasks) + trace.rank_events(Path(run_dir) / "trace") + trace.phase_events(phases)
        return trace.write(Path(run_dir) / "trace.json", events, {"run": Path(run_dir).name})


def background_watch(cfg, log=print) -> tuple[Watch, contextlib.AbstractContextManager]:
    """A :class:`Watch` whose scheduler (:func:`pipeline.cluster.monitor_client`) starts in a
    background thread, and the context that stops it."""
    from pipeline.cluster import monitor_address, monitor_client
    address = cfg.address if cfg.kind == "address" and cfg.address else monitor_address()
    started: Future = Future()
    stop = threading.Event()

    def serve() -> None:
        try:
            with monitor_client(cfg, address, log=log) as client:
                started.set_result(client)
                stop.wait()
        except BaseException as exc:   # noqa: BLE001 - handed to the waiting side
            if not started.done():
                started.set_exception(exc)

    thread = threading.Thread(target=serve, name="dcpipe-monitor-scheduler", daemon=True)
    thread.start()

    @contextlib.contextmanager
    def running():
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    return Watch(pending=started, address=address, tls=cfg.tls, log=log), running()
