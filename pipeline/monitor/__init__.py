"""Live monitoring of a run on the Dask scheduler: the ``/dcpipe`` dashboard page, Prometheus
figures on ``/metrics``, the run's ``trace.json``.

The ranks report through the Dask client (``Client.log_event`` on :data:`TOPIC`, from
``models.telemetry``); the scheduler plugin (:mod:`pipeline.monitor.plugin`) keeps the latest
figures per run and rank; the page (:mod:`pipeline.monitor.page`) and the Prometheus collector
(:mod:`pipeline.monitor.prometheus`) read them there. Both are installed on a scheduler by the
preload :mod:`pipeline.monitor.preload` (``dask scheduler --preload pipeline.monitor.preload``;
``pipeline.cluster`` passes it to the schedulers it starts).
"""
from __future__ import annotations

import os

#: the event topic the ranks and the launcher log to (``models.telemetry.TOPIC`` is the same name)
TOPIC = "dcpipe-telemetry"
#: the scheduler plugin's name (``scheduler.plugins[PLUGIN]``)
PLUGIN = "dcpipe-monitor"
#: the preload module that adds the page and the plugin to a scheduler
PRELOAD = "pipeline.monitor.preload"
#: the dashboard route of the page
ROUTE = "/dcpipe"
#: ``DCPIPE_MONITOR=0`` turns monitoring off (no scheduler on a cache hit, no rank reports)
SWITCH_ENV = "DCPIPE_MONITOR"


def enabled(environ=os.environ) -> bool:
    """Monitoring is on unless ``$DCPIPE_MONITOR`` is ``0``, ``off`` or ``false``."""
    return environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "off", "false", "no")
