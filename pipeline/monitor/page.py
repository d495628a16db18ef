"""The dashboard page ``http://HOST:8787/dcpipe``: a Bokeh app in Dask's own dashboard.

:func:`register` adds it to ``distributed.dashboard.scheduler.applications`` (what the dashboard
serves, read when the scheduler starts its HTTP server; :mod:`pipeline.monitor.preload` calls it
at import). The page shows the run that reported last: its phase and ETA, a table of every rank's
latest figures, and step time and loss per rank over the steps; it refreshes every second from
the :class:`pipeline.monitor.plugin.MonitorPlugin` on the same scheduler. The same state is
served as JSON on ``/dcpipe/state.json`` (:func:`add_json_route`).
"""
from __future__ import annotations

import json
import time

from pipeline.monitor import PLUGIN, ROUTE

COLUMNS = (("rank", "rank"), ("step", "step"), ("epoch", "epoch"), ("step_ms", "step ms"),
           ("wait_ms", "data wait ms"), ("exchange_ms", "allreduce ms"), ("bytes_per_step", "bytes/step"),
           ("loss", "loss"), ("val_accuracy", "val accuracy"))
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _ms(value) -> float:
    return round(1e3 * value, 2) if value is not None else float("nan")


def table_data(run: dict | None) -> dict[str, list]:
    """The rank table's columns for ``run`` (a plugin run record)."""
    ranks = [run["ranks"][r] for r in sorted(run["ranks"])] if run else []
    nan = float("nan")
    return {"rank": [r["rank"] for r in ranks], "step": [r.get("step", 0) for r in ranks],
            "epoch": [r.get("epoch", 0) for r in ranks], "step_ms": [_ms(r.get("step_s")) for r in ranks],
            "wait_ms": [_ms(r.get("wait_s")) for r in ranks], "exchange_ms": [_ms(r.get("exchange_s")) for r in ranks],
            "bytes_per_step": [r.get("bytes_per_step", 0) for r in ranks],
            "loss": [round(r["loss"], 4) if r.get("loss") is not None else nan for r in ranks],
            "val_accuracy": [round(r["val_accuracy"], 4) if r.get("val_accuracy") is not None else nan
                             for r in ranks]}


def lines_data(run: dict | None, key: str, scale: float = 1.0) -> dict[str, list]:
    """One line per rank of ``key`` over the steps, for a MultiLine."""
    history = run["history"] if run else {}
    ranks = sorted(history)
    return {"xs": [[p["step"] for p in history[r]] for r in ranks],
            "ys": [[(p[key] or 0.0) * scale for p in history[r]] for r in ranks],
            "rank": [str(r) for r in ranks], "color": [COLORS[r % len(COLORS)] for r in ranks]}


def headline(run: dict | None, now: float | None = None) -> str:
    """The page's first lines: run, phase (for how long), step count and ETA."""
    if run is None:
        return "<h2>dcpipe</h2><p>No dcpipe run has reported to this scheduler yet.</p>"
    now = now or time.time()
    head = run["ranks"].get(0, {})
    step = f"step {head.get('step', 0)}/{head.get('steps_total', '?')}, epoch {head.get('epoch', 0)}/" \
           f"{head.get('epochs', '?')}" if head else "no steps yet"
    eta = f"ETA {run['eta_seconds']:.0f} s" if run["eta_seconds"] is not None else "ETA unknown"
    return (f"<h2>dcpipe run {run['run']}</h2><p><b>{run['phase']}</b> for {now - run['phase_since']:.0f} s"
            f" &middot; {step} &middot; {eta}</p>")


def dcpipe_doc(scheduler, extra, doc) -> None:
    """The Bokeh document of the page (the dashboard's app signature: scheduler, extra, doc)."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, DataTable, Div, TableColumn
    from bokeh.plotting import figure

    def current() -> dict | None:
        plugin = scheduler.plugins.get(PLUGIN)
        return plugin.latest() if plugin is not None else None

    run = current()
    title = Div(text=headline(run), name="dcpipe-headline")
    table_source = ColumnDataSource(table_data(run), name="dcpipe-ranks")
    table = DataTable(source=table_source, columns=[TableColumn(field=f, title=t) for f, t in COLUMNS],
                      width=900, height=220, index_position=None)
    plots, sources = [], {}
    for key, label, scale in (("step_s", "step time (ms)", 1e3), ("wait_s", "data wait (ms)", 1e3),
                              ("exchange_s", "allreduce (ms)", 1e3), ("loss", "training loss", 1.0)):
        sources[key] = ColumnDataSource(lines_data(run, key, scale), name=f"dcpipe-{key}")
        plot = figure(title=label, width=440, height=240, x_axis_label="step", tools="pan,wheel_zoom,reset")
        plot.multi_line("xs", "ys", color="color", legend_field="rank", source=sources[key])
        plots.append(plot)

    def update() -> None:
        run = current()
        title.text = headline(run)
        table_source.data = table_data(run)
        for key, scale in (("step_s", 1e3), ("wait_s", 1e3), ("exchange_s", 1e3), ("loss", 1.0)):
            sources[key].data = lines_data(run, key, scale)

    doc.add_periodic_callback(update, 1000)
    doc.title = "Dask: dcpipe"
    doc.add_root(column(title, table, row(plots[0], plots[1]), row(plots[2], plots[3])))


def register() -> None:
    """Add the page to the dashboard's applications (before the scheduler starts its dashboard)."""
    try:
        from distributed.dashboard.scheduler import applications
    except ImportError:   # no bokeh: no dashboard at all
        return
    applications.setdefault(ROUTE, dcpipe_doc)


def add_json_route(scheduler) -> None:
    """``/dcpipe/state.json``: the plugin's state, for scripts (and the page's tests)."""
    from distributed.http.utils import RequestHandler

    class State(RequestHandler):
        def get(self):
            plugin = self.server.plugins.get(PLUGIN)
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(plugin.state() if plugin else {"runs": []}, default=float))

    app = getattr(scheduler, "http_application", None)
    if app is not None:
        app.add_handlers(r".*", [(rf"{ROUTE}/state.json", State, {"dask_server": scheduler})])
