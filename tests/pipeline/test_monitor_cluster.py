"""pipeline.cluster's dashboard for the monitoring: bound to 127.0.0.1, a busy port said in one line,
the /dcpipe page and /metrics served by a real scheduler without workers (a cache hit's)."""
import socket
import urllib.request

from pipeline.cluster import dashboard_bind, monitor_address, monitor_client
from pipeline.config import ClusterConfig
from pipeline.monitor.session import breakdown


def test_a_host_less_dashboard_address_binds_localhost_and_a_busy_port_is_one_line():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    lines = []
    try:
        cfg = ClusterConfig.model_validate({"dashboard_address": f":{port}"})
        with monitor_client(cfg, monitor_address(), log=lines.append) as client:
            host, taken = client.cluster.scheduler.http_server.address, client.cluster.scheduler.http_server.port
            base = f"http://127.0.0.1:{taken}"
            page = urllib.request.urlopen(f"{base}/dcpipe", timeout=10).read().decode()
            metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    finally:
        busy.close()
    assert host == "127.0.0.1" and taken != port
    assert lines[0] == f"Dask: dashboard port {port} is busy; the dashboard took port {taken} instead"
    assert "Dask: dcpipe" in page and "dask_scheduler_workers" in metrics
    assert dashboard_bind("10.0.0.5:8787") == "10.0.0.5:8787"


def test_the_breakdown_adds_up_to_the_wall_time_and_a_skipped_phase_is_zero():
    marks = {"start": 100.0, "located": 100.5, "prepared": 101.5, "launched": 102.0, "train_start": 110.0, "train_end": 130.0,
             "eval_end": 131.0, "export_end": 134.0, "end": 135.0}      # a cache hit: no cluster_started
    parts = breakdown(marks)
    assert parts["locate"] == 0.5 and parts["cluster_start"] == 0 and parts["prepare"] == 1.0
    assert parts["rank_start"] == 8.0
    assert sum(parts.values()) == 35.0
