"""models.launch: the command line of each launcher, as text."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from models.launch import LAUNCHERS

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
    if launcher == "mpirun":   # each rank needs the code's path and the thread limit
        assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "-x"] == ["PYTHONPATH", "OMP_NUM_THREADS",
                                                                         "TF_CPP_MIN_LOG_LEVEL"]
