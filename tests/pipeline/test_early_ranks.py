"""Ranks started while Dask prepares (``pipeline.training.early_ranks``), the ways a run ends before
they get their plan: the preparation fails, or the user interrupts it. A real ``dcpipe run`` process
with a real LocalCluster and real ``horovodrun`` ranks; afterwards no rank may be left running and
no run folder may be left behind (it never held a run)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from models.supervise import process_alive, run_processes
from models.rundir import RunDir
from tests.models.helpers import REPO, rank_pids

STARTED = "started while the data is prepared"


def _dcpipe_run(tmp_path, cfg: dict):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO), "DCPIPE_MONITOR": "0"}
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--config", str(config), "--workdir",
                             str(tmp_path / "work")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=tmp_path, start_new_session=True)


@pytest.fixture(autouse=True)
def _stop_what_the_test_started(tmp_path):
    """A test that fails midway (a run that hung past its timeout) still stops what it started: the
    ranks run in their own process groups, and two hung runs' ranks waited on for 45 minutes at 12-21%
    of a core each."""
    yield
    for pid in run_processes(str(tmp_path / "work")):   # dcpipe, horovodrun, the ranks: each names the workdir
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ranks(work) -> list[int]:
    """The rank processes of the early run under ``work`` (its folder exists once they start)."""
    folders = list((work / "runs").glob("*")) if (work / "runs").is_dir() else []
    return list(rank_pids(RunDir(folders[0]).plan).values()) if folders else []


def _nothing_left(work) -> None:
    deadline = time.monotonic() + 10
    while run_processes(str(work / "runs")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not run_processes(str(work / "runs")), "a rank outlived the job"
    assert not (work / "runs").exists(), sorted((work / "runs").rglob("*"))


@pytest.mark.horovod
def test_a_preparation_that_fails_cancels_the_early_ranks_and_leaves_no_run_folder(tmp_path):
    (tmp_path / "narrow.csv").write_text("1,2,3\n4,5,6\n")
    proc = _dcpipe_run(tmp_path, {"source": {"path": str(tmp_path / "narrow.csv")}, "cluster": {"workers": 1}})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    assert STARTED in out                                      # the ranks had really been started
    last = out.strip().splitlines()[-1]
    assert last.startswith("dcpipe: error: ") and "all 2 records were quarantined" in last, last
    _nothing_left(tmp_path / "work")


@pytest.mark.horovod
def test_an_interrupt_during_the_preparation_ends_the_early_ranks(tmp_path):
    # the embedded MNIST (~10 s to prepare), with two ranks to end (one CPU rank is the default)
    proc = _dcpipe_run(tmp_path, {"cluster": {"workers": 1}, "train": {"np": 2}})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if STARTED in line:
            break
    ranks = []
    deadline = time.monotonic() + 60
    while len(ranks) < 2 and time.monotonic() < deadline:    # both ranks up (importing TensorFlow or waiting)
        ranks = _ranks(tmp_path / "work")
        time.sleep(0.1)
    assert len(ranks) >= 2, "".join(lines)
    assert not list((tmp_path / "work").glob("datasets/*/*/manifest.json")), "prepared before the interrupt"
    os.killpg(proc.pid, signal.SIGINT)                          # Ctrl-C in the terminal: the whole group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, "".join(lines) + out
    assert not any(map(process_alive, ranks))
    _nothing_left(tmp_path / "work")
