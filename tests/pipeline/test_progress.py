"""Prepare's tasks are named by stage on the dashboard, and each phase shows its progress: bars on a
terminal, one line per stage in a log file (no carriage returns), from the real CLI too."""
import subprocess
import sys
import time

import dask

import pytest
import yaml

from pipeline import progress
from pipeline.cluster import local_client
from pipeline.progress import KEPT, STAGES, stage_of_name
from tests.conftest import REPO, small_config, take_balanced

# every stage the brief's dashboard shows; checksums and report are local work (a line each)
DASK_STAGES = {"ingest", "validate", "clean", "split", "features", "augment", "write", "report-statistics",
               "report-histograms"}


@pytest.mark.parametrize("name, stage", [
    ("validate", "validate"),
    ("clean-dup-flags", "clean"),
    ("features-split", "split"),                              # not features: the more specific word wins
    ("features-image-getitem", "features"),
    ("rechunk-merge-augment-repeat-split", "augment"),        # fused: the latest stage it names
    ("augment-image-concatenate-rechunk-merge-store-map", "write"),
    ("getitem-astype-mean-values-histogram-sum-operation-sum", None),   # an operation: inherits its inputs'
])
def test_stage_of_a_task_name(name, stage):
    assert stage_of_name(name) == stage


def _csv(tmp_path, mnist_lines):
    csv = tmp_path / "small.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 12)) + "\n")
    return csv


def test_prepare_names_every_task_by_its_stage(staged_prepare):
    names = staged_prepare.task_names
    assert DASK_STAGES <= set(names), names
    assert set(names) <= set(STAGES) | {n for n in names if n.startswith(KEPT)}, names   # nothing else
    done = [line.split()[1] for line in staged_prepare.lines if line.startswith("[progress]")]
    assert {"validate", "clean", "split", "augment", "write", "checksums", "report", "report-statistics"} <= set(done)


def test_cli_prepare_logs_one_line_per_stage_without_carriage_returns(tmp_path, mnist_lines):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small_config(_csv(tmp_path, mnist_lines), cluster={"workers": 1}).model_dump(mode="json")))
    log = tmp_path / "prepare.log"
    with open(log, "wb") as out:
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "prepare", "--config", str(config),
                               "--workdir", str(tmp_path / "work")], stdout=out, stderr=subprocess.PIPE,
                              cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    text = log.read_bytes()
    assert b"\r" not in text
    stages = [line.split()[1] for line in text.decode().splitlines() if line.startswith("[progress]")]
    for stage in ("validate", "clean", "split", "augment", "write", "checksums", "report"):
        assert stage in stages, text.decode()


def _fails(_):
    raise ValueError("row 7 cannot be parsed")


def _slow(_):
    time.sleep(60)
    return 1


def test_a_stage_ends_at_its_first_failed_task_without_waiting_for_the_others():
    """One task fails at once while another runs for a minute: the stage raises the task's own error
    within seconds (the rest released), not once the slow task ends."""
    with local_client(small_config("unused.csv").cluster, log=lambda *_: None) as client:
        failing = dask.delayed(_fails, pure=False)(0, dask_key_name="ingest-fails")
        slow = dask.delayed(_slow, pure=False)(0, dask_key_name="ingest-slow")
        started = time.monotonic()
        with pytest.raises(ValueError, match="row 7 cannot be parsed") as raised:
            progress.compute(client, [failing, slow], "ingest", show=False)
        assert time.monotonic() - started < 30
        # the stage's tasks are forgotten by the scheduler (the cluster is this test's own) while the
        # error is still held (its traceback holds the stage's futures, as a notebook's last traceback
        # does), not left to run for their minute (the worker's thread still sleeps: Python cannot
        # interrupt it). By state, not by name: the scheduler knows the tasks by their stage names.
        deadline = time.monotonic() + 10
        while _scheduler_tasks(client) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _scheduler_tasks(client) == {}, f"still on the scheduler after {raised.value!r}"


def _scheduler_tasks(client) -> dict:
    return client.run_on_scheduler(lambda dask_scheduler: {str(k): ts.state for k, ts in dask_scheduler.tasks.items()})
