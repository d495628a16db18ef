"""Launch training: write the plan, start the ranks under supervision, restart them on failure.

:func:`launch` runs the launcher command (``horovodrun``, ``srun`` or ``mpirun``; see
``LAUNCHERS``) through :func:`models.supervise.supervise`, which ties the ranks' lives to this
process (session, parent-death signal, signal handling); every rank also watches this process
(``DCPIPE_SUPERVISOR_PID``, see ``models.train``) and exits when it is gone, whatever launcher
sits between (horovodrun puts each rank in a session of its own).

:class:`EarlyRanks` starts a run's ranks before its plan exists (``EARLY_ENV``): each imports
TensorFlow and joins Horovod, then waits for the plan file, so that starting them overlaps the data
preparation instead of following it; :func:`launch` hands them the plan as their first attempt.

When the ranks fail, :func:`launch` restarts them from the run's last checkpoint, up to
``train.max_restarts`` times, at the same world size, or at the size the answering hosts of a
``-H host:slots`` list still give (at least ``train.min_np``). A rank SIGKILLed under
``horovodrun --gloo`` makes horovodrun end the other ranks and exit 1 within about 2 s (checked by
hand, Horovod 0.28.1), so a failure is seen by the exit code.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from models import checkpoint
from models.plan import TrainPlan
from models.rundir import RunDir
from models.supervise import end_processes, supervise
from models.telemetry import ADDRESS_ENV, INTERVAL_ENV, RUN_ENV, SWITCH_ENV, TLS_ENV

#: the environment a rank reads to watch its supervisor (``models.train.watch_supervisor``)
SUPERVISOR_PID_ENV, SUPERVISOR_HOST_ENV = "DCPIPE_SUPERVISOR_PID", "DCPIPE_SUPERVISOR_HOST"
#: the restarts so far, as JSON, for rank 0's ``metrics.json``
RESTARTS_ENV = "DCPIPE_RESTARTS"
#: set for ranks started before their plan is written (:class:`EarlyRanks`, ``models.train.wait_for_plan``)
EARLY_ENV = "DCPIPE_EARLY_START"


def cancel_path(plan_path: Path) -> Path:
    """The file beside a plan whose appearance tells early ranks waiting for it to exit."""
    return Path(plan_path).with_suffix(".cancel")

#: the monitoring's variables (``models.telemetry``), always set for the ranks (``mpirun -x`` needs them set)
TELEMETRY_ENV = {ADDRESS_ENV: "", RUN_ENV: "", TLS_ENV: "", SWITCH_ENV: "1", INTERVAL_ENV: "1"}
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class TrainingFailed(RuntimeError):
    """The ranks failed and were not (or could no longer be) restarted; the message names the log."""


class RunFinished(TrainingFailed):
    """A run asked to resume has already finished (its ``metrics.json`` exists)."""


class PlanRejected(TrainingFailed):
    """The ranks cannot train the plan as configured (its network cannot take the input): a config
    error, stated by the ranks in ``RunDir.rejected`` and never restarted."""


def gpu_count() -> int:
    """GPUs on this node, without importing TensorFlow in the launching process."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU ")) if out.returncode == 0 else 0


def default_np() -> int:
    """One rank per GPU, or one CPU rank that uses every core (:func:`default_threads`)."""
    return gpu_count() or 1


def ranks_per_node(np: int, hosts: str | None) -> int:
    """The most ranks any one node runs: ``np`` on this node alone, else the largest slot count of ``hosts``.

    >>> ranks_per_node(2, None), ranks_per_node(6, "a:4,b:2")
    (2, 4)
    """
    return np if hosts is None else min(np, max(slots for _, slots in parse_hosts(hosts)))


def default_threads(per_node: int, environ=os.environ) -> int:
    """CPU threads a rank gets when ``train.threads_per_rank`` is null: the cores this process may use
    (or SLURM's ``SLURM_CPUS_ON_NODE`` in an allocation) shared by ``per_node`` ranks, at least 1.
    The nodes are taken to be alike: the ranks on another node get as many."""
    cores = int(environ.get("SLURM_CPUS_ON_NODE") or len(os.sched_getaffinity(0)))
    return max(1, cores // max(per_node, 1))


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
    exported = ["PYTHONPATH", "OMP_NUM_THREADS", "TF_CPP_MIN_LOG_LEVEL", "PYTHONUNBUFFERED", SUPERVISOR_PID_ENV,
                SUPERVISOR_HOST_ENV, RESTARTS_ENV, EARLY_ENV, *TELEMETRY_ENV]
    return ["mpirun", "-np", str(np), *(["-H", hosts] if hosts else []), "-bind-to", "none", "-map-by", "slot",
            *[a for name in exported for a in ("-x", name)], sys.executable, "-m", "models.train", str(plan_path)]


LAUNCHERS = {"horovodrun": horovodrun_command, "srun": srun_command, "mpirun": mpirun_command}


def rank_env(threads: int) -> dict[str, str]:
    """The ranks' environment: thread limit, this code on the path, unbuffered output, and this
    process as the supervisor each rank watches."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
                SUPERVISOR_PID_ENV: str(os.getpid()), SUPERVISOR_HOST_ENV: socket.gethostname(),
                "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                               env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    return env


# -- hosts ---------------------------------------------------------------------------------------

def parse_hosts(hosts: str) -> list[tuple[str, int]]:
    """``-H`` as ``[(host, slots), ...]``.

    >>> parse_hosts("a:2,b:4")
    [('a', 2), ('b', 4)]
    """
    out = []
    for part in hosts.split(","):
        host, _, slots = part.strip().rpartition(":")
        if not host or not slots.isdigit() or int(slots) < 1:
            raise ValueError(f"hosts {hosts!r}: {part!r} is not HOST:SLOTS with SLOTS >= 1; e.g. node1:2,node2:2")
        out.append((host, int(slots)))
    return out


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS or host == socket.gethostname()


def host_answers(host: str) -> bool:
    """True when ``ssh HOST true`` succeeds without a password within 5 s."""
    try:
        return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host, "true"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def restart_world(np: int, hosts: str | None, min_np: int | None,
                  answers: Callable[[str], bool] = host_answers) -> tuple[int, str | None]:
    """``(world size, hosts)`` for a restart: the same, or fewer when non-local hosts of ``hosts``
    no longer ``answers``; ``TrainingFailed`` when that leaves fewer than ``min_np`` (None = np).

    >>> restart_world(4, "localhost:2,b:2", 2, answers=lambda host: False)
    (2, 'localhost:2')
    """
    if hosts is None:
        return np, None
    listed = parse_hosts(hosts)
    kept = [(h, n) for h, n in listed if is_local(h) or answers(h)]
    world, floor = min(np, sum(n for _, n in kept)), min_np or np
    if world < floor:
        lost = ", ".join(h for h, n in listed if (h, n) not in kept)
        raise TrainingFailed(f"restart: host(s) {lost} no longer answer ssh; {world} slot(s) left, fewer than "
                             f"train.min_np {floor}; bring the hosts back or lower train.min_np")
    return world, ",".join(f"{h}:{n}" for h, n in kept) if len(kept) < len(listed) else hosts


# -- the run -------------------------------------------------------------------------------------

def _attempt_env(threads: int, extra_env: dict[str, str] | None, restarts: list[dict]) -> dict[str, str]:
    return rank_env(threads) | {k: os.environ.get(k, v) for k, v in TELEMETRY_ENV.items()} \
        | (extra_env or {}) | {RESTARTS_ENV: json.dumps(restarts), EARLY_ENV: ""}


class EarlyRanks:
    """A run's ranks, started before its plan exists: the first attempt of :func:`launch`.

    Starting a rank costs seconds that do not depend on the data (the TensorFlow import, ~4 s of CPU,
    and Horovod's init, the launcher's own start): on the 2-core main job, 10 s of a 55 s run after
    the 13 s of preparation. Started while Dask prepares, each rank does that work and then waits
    for ``run.plan`` (``models.train.wait_for_plan``); :func:`launch` writes the plan and waits
    for these ranks as it would for ranks it started. :meth:`cancel` (the preparation failed, or a
    check after it) writes ``plan.cancel`` beside the plan: the waiting ranks exit 0 at once.

    The launcher runs under :func:`models.supervise.supervise` in a thread of this process, so the
    ranks' ties to it hold (session, parent-death signal, each rank watching this process); a signal
    here reaches the main thread, whose exit ends them (:meth:`cancel`, or the parent-death signal).
    """

    def __init__(self, run: RunDir, np: int, threads: int | None, launcher: str = "horovodrun",
                 hosts: str | None = None, extra_env: dict[str, str] | None = None, log=print):
        self.run, self.np, self.log = run, np, log
        self.handed_over = False
        self._code: int | None = None
        self._error: BaseException | None = None
        self._cmd = LAUNCHERS[launcher](np, run.plan, hosts)
        env = _attempt_env(threads or default_threads(ranks_per_node(np, hosts)), extra_env, []) | {EARLY_ENV: "1"}
        log(f"Horovod: {' '.join(self._cmd[:7])} ... ({np} ranks, started while the data is prepared)")
        self._thread = threading.Thread(target=self._supervise, args=(env,), name="dcpipe-early-ranks", daemon=True)
        self._thread.start()

    def _supervise(self, env: dict[str, str]) -> None:
        try:
            self._code = supervise(self._cmd, env=env, cwd=self.run.path, log_path=self.run.log,
                                   marker=str(self.run.plan), log=lambda line: self.log(line))
        except BaseException as exc:   # re-raised in the thread that waits for the ranks
            self._error = exc

    def wait(self, log=None) -> int:
        """The exit code of the ranks, once ``run.plan`` is written; their lines go to ``log`` from now on."""
        self.handed_over, self.log = True, log or self.log
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._code

    def cancel(self, grace: float = 10.0) -> None:
        """Stop the ranks that never got a plan: they exit 0 on ``plan.cancel``; ended by signal
        when they have not within ``grace`` seconds (e.g. still importing TensorFlow)."""
        cancel_path(self.run.plan).touch()
        self._thread.join(grace)
        if self._thread.is_alive():
            end_processes(None, str(self.run.plan))
            self._thread.join()


def _from_step(run: RunDir, world: int) -> int:
    path = checkpoint.latest(run.path)
    return checkpoint.read_position(path, world).global_step if path else 0


def launch(plan: TrainPlan, np: int, log=print, launcher: str = "horovodrun", hosts: str | None = None,
           answers: Callable[[str], bool] = host_answers, extra_env: dict[str, str] | None = None,
           early: EarlyRanks | None = None) -> dict:
    """Run the ranks of ``plan`` with ``launcher`` (see ``LAUNCHERS``); return rank 0's metrics.

    Output goes to ``log`` and the run's ``train.log``. A failed attempt is restarted from the
    last checkpoint up to ``plan.train.max_restarts`` times (see :func:`restart_world`); rank 0's
    ``metrics.json`` records them under ``"restarts"``. ``extra_env`` is added to the ranks' environment
    (the monitoring's scheduler address and run id, ``models.telemetry``). ``early``: the first
    attempt's ranks, already started and waiting for this plan (:class:`EarlyRanks`). Raises
    ``RunFinished`` when ``plan.resume`` names a run that has finished, ``TrainingFailed`` when the
    restarts are exhausted. The application layer holds the run's lock (``RunDir.lock``) around this call.
    """
    run = RunDir(Path(plan.run_dir))
    if plan.resume and run.metrics.exists():
        raise RunFinished(f"{run.path}: run {run.id} has finished ({run.metrics.name} exists); nothing to resume, "
                          "start a new run instead")
    if not plan.resume and np > plan.logical_shards:
        log(f"train.logical_shards {plan.logical_shards} < {np} ranks: raised to {np} for this run")
        plan = plan.with_train(logical_shards=np)
    if plan.threads_per_rank is None:   # the plan records what the ranks used
        plan = plan.with_train(threads_per_rank=default_threads(ranks_per_node(np, hosts)))
    restarts: list[dict] = []
    world, attempt_hosts, codes = np, hosts, []
    while True:
        plan.save(run.plan)            # early ranks start on it now
        if early is not None and not restarts:
            if early.np != world:
                raise ValueError(f"early ranks: {early.np} started, {world} planned")
            code = early.wait(log)
        else:
            cmd = LAUNCHERS[launcher](world, run.plan, attempt_hosts)
            env = _attempt_env(plan.threads_per_rank, extra_env, restarts)
            log(f"Horovod: {' '.join(cmd[:7])} ... ({world} ranks)")
            code = supervise(cmd, env=env, cwd=run.path, log_path=run.log, marker=str(run.plan), log=log)
        if code == 0:
            return json.loads(run.metrics.read_text())
        if run.rejected.exists():   # the configuration, not the machine: a restart would fail the same way
            raise PlanRejected(json.loads(run.rejected.read_text())["error"])
        codes.append(code)
        if len(restarts) >= plan.train.max_restarts:
            raise TrainingFailed(f"training failed in {len(codes)} attempt(s) (exit codes "
                                 f"{', '.join(map(str, codes))}; train.max_restarts {plan.train.max_restarts}); "
                                 f"see {run.log}")
        world, attempt_hosts = restart_world(np, hosts, plan.train.min_np, answers)
        restarts.append({"attempt": len(codes), "exit_code": code, "world_size": world,
                         "from_step": _from_step(run, world)})
        with open(run.log, "a") as out:
            out.write(f"[launch] attempt {len(codes)} exited with code {code}: restart "
                      f"{len(restarts)}/{plan.train.max_restarts} at {world} ranks from step "
                      f"{restarts[-1]['from_step']}\n")
        log(f"[train] ranks exited with code {code}: restarting ({len(restarts)}/{plan.train.max_restarts}) at "
            f"{world} ranks from the last checkpoint (step {restarts[-1]['from_step']})")
        plan = replace(plan, resume=True)
