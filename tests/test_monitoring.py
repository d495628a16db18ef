"""The job watched live: a real LocalCluster that stays up through a real `horovodrun -np 2`, its
/dcpipe page (over Bokeh's websocket, as a browser reads it), /dcpipe/state.json and /metrics
read while the ranks train; then the run's trace.json and time breakdown."""
import json
import re
import threading
import time
import urllib.request

import pytest

from pipeline import run
from tests.conftest import small_config, take_balanced

pytestmark = [pytest.mark.integration, pytest.mark.horovod]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _page_table(url: str) -> dict:
    """The /dcpipe document's rank table, pulled over the websocket like a browser does."""
    from bokeh.client import pull_session
    with pull_session(url=url) as session:
        return dict(session.document.get_model_by_name("dcpipe-ranks").data)


class Poller(threading.Thread):
    """Reads the dashboard while the job runs; keeps the last answers that had both ranks in them."""

    def __init__(self, lines: list[str]):
        super().__init__(daemon=True)
        self.lines, self.seen, self.done = lines, {}, threading.Event()

    def base(self) -> str | None:
        for line in list(self.lines):
            found = re.search(r"dashboard (http://127\.0\.0\.1:\d+)/status", line)
            if found:
                return found.group(1)
        return None

    def run(self) -> None:
        while not self.done.is_set():
            base = self.base()
            if base:
                try:
                    self.poll(base)
                except OSError:
                    pass
            time.sleep(0.3)

    def poll(self, base: str) -> None:
        state = json.loads(_get(f"{base}/dcpipe/state.json"))
        runs = state["runs"]
        if runs and len(runs[-1]["ranks"]) == 2 and all("step" in r for r in runs[-1]["ranks"]):
            self.seen["state"] = runs[-1]
            metrics = _get(f"{base}/metrics")
            if 'dcpipe_step_seconds{rank="1"' in metrics or "dcpipe_step_seconds{" in metrics:
                self.seen["metrics"] = metrics
            if "page" not in self.seen:
                self.seen["page"] = _page_table(f"{base}/dcpipe")


@pytest.fixture(scope="module")
def watched(tmp_path_factory, mnist_lines):
    tmp = tmp_path_factory.mktemp("watched")
    csv = tmp / "mnist_400.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 40)) + "\n")
    cfg = small_config(csv, train={"epochs": 3, "batch_size": 16, "np": 2},
                       cluster={"dashboard_address": "127.0.0.1:0"})
    lines: list[str] = []
    poller = Poller(lines)
    poller.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DCPIPE_MONITOR_INTERVAL", "0.2")
        summary = run(cfg, workdir=tmp / "work", show_progress=False, log=lambda *a: lines.append(" ".join(map(str, a))))
    poller.done.set()
    poller.join(timeout=10)
    return tmp / "work" / "runs" / summary["run_id"], summary, poller.seen, lines


def test_page_and_metrics_show_both_ranks_while_training(watched):
    run_dir, summary, seen, lines = watched
    assert {"state", "metrics", "page"} <= set(seen), (seen.keys(), lines[-20:])
    state = seen["state"]
    assert state["run"] == summary["run_id"]
    assert [r["rank"] for r in state["ranks"]] == [0, 1]
    for r in state["ranks"]:
        assert r["steps_total"] == 60 and 0 < r["step"] <= 60
        assert 0 < r["step_s"] < 5 and 0 <= r["wait_s"] < r["step_s"] and 0 <= r["exchange_s"] < r["step_s"]
        assert r["bytes_per_step"] == summary_bytes(run_dir) and r["loss"] > 0
    assert seen["page"]["rank"] == [0, 1] and all(s > 0 for s in seen["page"]["step"])
    metrics = seen["metrics"]
    for rank in ("0", "1"):
        labels = f'{{rank="{rank}",run="{summary["run_id"]}"}}'
        for name in ("dcpipe_step_seconds", "dcpipe_data_wait_seconds", "dcpipe_exchange_seconds",
                     "dcpipe_bytes_sent_per_step", "dcpipe_loss", "dcpipe_steps_total"):
            assert f"{name}{labels}" in metrics, name
    assert "dask_scheduler_workers" in metrics            # Dask's own figures are served too
    # Prepared, the local workers were let go: the ranks train beside the scheduler alone.
    workers = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("dask_scheduler_workers{")]
    assert workers and sum(workers) == 0, [line for line in metrics.splitlines() if "scheduler_workers" in line]
    assert any("2 local worker(s) stopped for training" in line for line in lines)


def summary_bytes(run_dir) -> int:
    return json.loads((run_dir / "metrics.json").read_text())["bytes_per_step"]


def test_trace_has_worker_and_rank_tracks_on_one_clock(watched):
    run_dir, summary, _, _ = watched
    trace = json.loads((run_dir / "trace.json").read_text())["traceEvents"]
    names = {(e["pid"], e["args"]["name"]) for e in trace if e["ph"] == "M" and e["name"] == "thread_name"}
    workers = [n for pid, n in names if pid == 1]
    assert len(workers) == 2 and all(n.startswith("worker tcp://127.0.0.1:") for n in workers)
    assert {(2, "rank 0"), (2, "rank 1"), (2, "job")} <= names
    spans = [e for e in trace if e["ph"] == "X"]
    by_track = {}
    for e in spans:
        by_track.setdefault((e["pid"], e["tid"]), set()).add(e["name"])
    for rank in (0, 1):
        assert {"data wait", "compute", "gradient exchange", "apply", "validation", "evaluation"} <= by_track[(2, rank + 1)]
    assert {"checkpoint", "export"} <= by_track[(2, 1)]
    prepare = max(e["ts"] + e["dur"] for e in spans if e["pid"] == 1)
    first_step = min(e["ts"] for e in spans if e["pid"] == 2 and e["name"] == "data wait")
    assert prepare < first_step < prepare + 120e6      # one clock: prepare ends before training starts


def test_summary_breaks_the_wall_time_down(watched):
    _, summary, _, _ = watched
    parts = summary["time_breakdown"]
    assert list(parts) == ["locate", "cluster_start", "prepare", "setup", "rank_start", "training", "evaluation",
                           "export", "finish"]
    assert all(v >= 0 for v in parts.values()) and parts["cluster_start"] > 0 and parts["training"] > 0
    assert abs(sum(parts.values()) - summary["wall_seconds"]) < 0.03 * summary["wall_seconds"] + 0.1
