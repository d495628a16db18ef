"""A Dask scheduler preload: ``dask scheduler --preload pipeline.monitor.preload``.

Importing it (distributed imports preloads before the scheduler starts its dashboard) adds the
``/dcpipe`` Bokeh page to the dashboard's applications; ``dask_setup`` adds the monitor plugin
and its JSON route ``/dcpipe/state.json``.
"""
from __future__ import annotations

from pipeline.monitor import page
from pipeline.monitor.plugin import MonitorPlugin

page.register()


def dask_setup(scheduler) -> None:
    plugin = MonitorPlugin()
    scheduler.add_plugin(plugin)
    page.add_json_route(scheduler)
