"""Launch training: write the plan, start ``horovodrun`` with N ranks, stream its output."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from models.plan import TrainPlan


class TrainingFailed(RuntimeError):
    """The ranks exited non-zero; the message names the log to read."""


def new_run_dir(workdir: Path) -> Path:
    """A fresh ``<workdir>/runs/<UTC time>-<random>``."""
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    run_dir = Path(workdir) / "runs" / run_id
    run_dir.mkdir(parents=True)
    return run_dir


def gpu_count() -> int:
    """GPUs on this node, without importing TensorFlow in the launching process."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU ")) if out.returncode == 0 else 0


def default_np() -> int:
    """One rank per GPU, or 2 CPU ranks."""
    return gpu_count() or 2


def slurm_hosts(nodes: list[str], tasks_per_node: str) -> str:
    """``horovodrun -H`` for a SLURM allocation: one slot per task on each node.

    >>> slurm_hosts(["a", "b", "c"], "4(x2),2")
    'a:4,b:4,c:2'
    """
    counts = []
    for part in tasks_per_node.split(","):
        n, _, repeat = part.partition("(x")
        counts += [int(n)] * int(repeat.rstrip(")") or 1)
    if len(counts) != len(nodes):
        raise ValueError(f"SLURM_TASKS_PER_NODE {tasks_per_node!r} names {len(counts)} nodes, "
                         f"the node list {len(nodes)}")
    return ",".join(f"{node}:{n}" for node, n in zip(nodes, counts))


def allocation_hosts() -> str:
    """The current SLURM allocation as ``horovodrun -H``; one node is ``localhost:N`` (no ssh)."""
    try:
        nodelist, per_node = os.environ["SLURM_JOB_NODELIST"], os.environ["SLURM_TASKS_PER_NODE"]
    except KeyError as missing:
        raise ValueError(f"${missing.args[0]} is not set: not inside a SLURM job") from None
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
    except FileNotFoundError:
        raise ValueError("scontrol is not on PATH") from None
    if out.returncode != 0:
        raise ValueError(f"scontrol show hostnames {nodelist} failed: {out.stderr.strip()}")
    nodes = out.stdout.split()
    hosts = slurm_hosts(nodes, per_node)
    return f"localhost:{hosts.rsplit(':', 1)[1]}" if len(nodes) == 1 else hosts


def horovodrun_command(np: int, plan_path: Path, hosts: str | None = None) -> list[str]:
    """``horovodrun -np N -H HOSTS --gloo python -m models.train PLAN``; HOSTS defaults to localhost:N."""
    horovodrun = Path(sys.executable).with_name("horovodrun")
    return [str(horovodrun if horovodrun.exists() else "horovodrun"), "-np", str(np),
            "-H", hosts or f"localhost:{np}", "--gloo", sys.executable, "-m", "models.train", str(plan_path)]


def srun_command(np: int, plan_path: Path, hosts: str | None = None) -> list[str]:
    """``srun -n N --mpi=pmix python -m models.train PLAN``: one rank per SLURM task (MPI Horovod build)."""
    return ["srun", "-n", str(np), "--mpi=pmix", "--kill-on-bad-exit=1", sys.executable, "-m", "models.train",
            str(plan_path)]


def mpirun_command(np: int, plan_path: Path, hosts: str | None = None) -> list[str]:
    """``mpirun -np N [-H HOSTS] python -m models.train PLAN`` (MPI Horovod build; e.g. a Kubeflow MPIJob)."""
    return ["mpirun", "-np", str(np), *(["-H", hosts] if hosts else []), "-bind-to", "none", "-map-by", "slot",
            "-x", "PYTHONPATH", "-x", "OMP_NUM_THREADS", "-x", "TF_CPP_MIN_LOG_LEVEL", sys.executable, "-m",
            "models.train", str(plan_path)]


LAUNCHERS = {"horovodrun": horovodrun_command, "srun": srun_command, "mpirun": mpirun_command}


def rank_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2",
                "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                               env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    return env


def launch(plan: TrainPlan, np: int, log=print, launcher: str = "horovodrun", hosts: str | None = None) -> dict:
    """Run the ranks with ``launcher`` (see ``LAUNCHERS``); return rank 0's metrics.

    Output goes to the console and ``train.log``.
    """
    run_dir = Path(plan.run_dir)
    plan_path = plan.save(run_dir / "train_plan.json")
    cmd = LAUNCHERS[launcher](np, plan_path, hosts)
    log(f"Horovod: {' '.join(cmd[:7])} ... ({np} ranks)")
    with open(run_dir / "train.log", "a") as out, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=rank_env(plan.threads_per_rank),
            cwd=run_dir) as proc:
        for line in proc.stdout:
            out.write(line)
            if "[train]" in line or "Error" in line or "error" in line:
                log(line.rstrip())
    if proc.returncode != 0:
        raise TrainingFailed(f"training exited with code {proc.returncode}; see {run_dir / 'train.log'}")
    return json.loads((run_dir / "metrics.json").read_text())
