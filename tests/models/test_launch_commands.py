"""models.launch: the command line of each launcher, as text."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from models.launch import LAUNCHERS, default_threads, ranks_per_node, slurm_hosts

PLAN = Path("/shared/run/train_plan.json")
TAIL = [sys.executable, "-m", "models.train", str(PLAN)]


@pytest.mark.parametrize("launcher, hosts, head", [
    # horovodrun on this machine only
    ("horovodrun", None, ["-np", "4", "-H", "localhost:4", "--gloo"]),
    # horovodrun across the nodes of a SLURM allocation (dcpipe.sbatch passes them)
    ("horovodrun", "node1:2,node2:2", ["-np", "4", "-H", "node1:2,node2:2", "--gloo"]),
    # srun inside an allocation: one rank per task, PMIx wires up MPI
    ("srun", None, ["srun", "-n", "4", "--mpi=pmix", "--kill-on-bad-exit=1"]),
    # mpirun with the MPIJob's hostfile from the environment
    ("mpirun", None, ["mpirun", "-np", "4", "-bind-to", "none", "-map-by", "slot"]),
    # mpirun on named hosts
    ("mpirun", "a:2,b:2", ["mpirun", "-np", "4", "-H", "a:2,b:2", "-bind-to", "none"]),
])
def test_launcher_command(launcher, hosts, head):
    cmd = LAUNCHERS[launcher](4, PLAN, hosts)
    assert cmd[-len(TAIL):] == TAIL
    start = 1 if launcher == "horovodrun" else 0
    assert cmd[start:start + len(head)] == head
    if launcher == "horovodrun":
        assert Path(cmd[0]).name == "horovodrun"
    if launcher == "mpirun":   # each rank needs the code's path, the thread limit and its supervisor
        assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "-x"] == [
            "PYTHONPATH", "OMP_NUM_THREADS", "TF_CPP_MIN_LOG_LEVEL", "PYTHONUNBUFFERED", "DCPIPE_SUPERVISOR_PID",
            "DCPIPE_SUPERVISOR_HOST", "DCPIPE_RESTARTS", "DCPIPE_EARLY_START", "DCPIPE_MONITOR_ADDRESS", "DCPIPE_RUN_ID",
            "DCPIPE_MONITOR_TLS", "DCPIPE_MONITOR", "DCPIPE_MONITOR_INTERVAL"]


@pytest.mark.parametrize("nodes, per_node, hosts", [
    (["n1"], "2", "n1:2"),                                  # one node
    (["a", "b", "c"], "4(x2),2", "a:4,b:4,c:2"),            # SLURM's compressed form
    (["a", "b", "c", "d"], "1,3(x3)", "a:1,b:3,c:3,d:3"),   # repeat last
])
def test_slurm_hosts_gives_one_slot_per_task(nodes, per_node, hosts):
    assert slurm_hosts(nodes, per_node) == hosts


def test_slurm_hosts_refuses_counts_that_do_not_match_the_nodes():
    with pytest.raises(ValueError, match=r"SLURM_TASKS_PER_NODE '4\(x2\)' names 2 nodes, the node list 3"):
        slurm_hosts(["a", "b", "c"], "4(x2)")


def test_hosts_slurm_outside_an_allocation_is_a_user_error(tmp_path, monkeypatch):
    from pipeline.errors import UserError
    from pipeline.job import run
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    with pytest.raises(UserError, match=r"--hosts slurm: \$SLURM_JOB_NODELIST is not set: not inside a SLURM job"):
        run(workdir=tmp_path, hosts="slurm", np=2, log=lambda *_: None)
    assert not (tmp_path / "runs").exists()                  # refused before anything was written


def test_a_null_thread_count_shares_the_nodes_cores_among_its_ranks():
    assert default_threads(1, environ={"SLURM_CPUS_ON_NODE": "8"}) == 8       # one CPU rank: every core
    assert default_threads(ranks_per_node(4, "a:2,b:2"), environ={"SLURM_CPUS_ON_NODE": "8"}) == 4
    assert default_threads(3, environ={"SLURM_CPUS_ON_NODE": "2"}) == 1       # never fewer than one
    assert default_threads(1, environ={}) == len(os.sched_getaffinity(0))
