"""A real single-node SLURM (munge, slurmctld, slurmd) under a temporary folder, for ``slurm`` tests.

Everything lives under the fixture's folder (its own munge socket and key, its own ports, state and
logs); every command reaches it through ``SLURM_CONF``. The daemons are stopped by their pid files.
The tests skip, printing why, only when the packages are missing and cannot be installed.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "srun")
SETUP_SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "setup.d" / "20-slurm.sh"


def _missing() -> list[str]:
    return [b for b in SLURM_BINARIES if not shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]


def _ensure_installed() -> str | None:
    """None when SLURM and munge are on the machine (installing them as root if needed), else why not."""
    if not _missing():
        return None
    if os.geteuid() != 0:
        return f"SLURM is not installed ({', '.join(_missing())} missing) and installing needs root"
    proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or _missing():
        return f"cannot install SLURM with {SETUP_SCRIPT.name}: {proc.stderr.strip()[-300:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


@dataclass
class Slurm:
    """A running single-node SLURM; ``env`` points commands at it."""
    root: Path
    env: dict[str, str]
    node: str
    cpus: int
    pid_files: dict[str, Path] = field(default_factory=dict)

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def logs(self) -> str:
        parts = []
        for name in ("log/slurmctld.log", "log/slurmd.log", "munge/munged.log"):
            path = self.root / name
            text = path.read_text(errors="replace")[-4000:] if path.exists() else "(none)"
            parts.append(f"--- {name} (last lines)\n{text}")
        return "\n".join(parts)

    def wait_idle(self, timeout: float = 90) -> None:
        """Wait until the node accepts jobs; fail with the daemons' logs otherwise."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            proc = self.run("sinfo", "-h", "-N", "-o", "%t", check=False)
            state = proc.stdout.strip()
            if state in ("idle", "mix", "alloc"):
                return
            if state.startswith(("down", "drain")):
                self.run("scontrol", "update", f"nodename={self.node}", "state=resume", check=False)
            time.sleep(1)
        raise RuntimeError(f"SLURM node {self.node} not idle after {timeout:g} s (state {state!r})\n{self.logs()}")

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.pid_files.get(name)
            if pid_file is None or not pid_file.exists():
                continue
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)


def _start_munge(root: Path, slurm_env: dict) -> tuple[Path, Path]:
    """munged as the munge user, with its own key, socket and pid file under ``root/munge``."""
    munge = pwd.getpwnam("munge")
    mdir, private = root / "munge", root / "munge" / "private"  # the socket's folder must be 755
    mdir.mkdir(mode=0o755)
    private.mkdir(mode=0o700)
    key = private / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    for path in (mdir, private, key):
        os.chown(path, munge.pw_uid, munge.pw_gid)
    sock, pid_file = mdir / "munge.socket", mdir / "munged.pid"
    log = mdir / "munged.log"
    cmd = (f"{_sbin('munged')} --socket={sock} --key-file={key} --pid-file={pid_file} "
           f"--seed-file={private / 'munged.seed'} --log-file={log}")
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", cmd], check=True, capture_output=True, text=True,
                   timeout=30)
    return sock, pid_file


def _memory_mb() -> int:
    """This machine's memory in MB, as slurmd counts it, so that jobs may ask for --mem."""
    with open("/proc/meminfo") as fh:
        total_kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    return max(total_kb // 1024 - 256, 256)


def _slurm_conf(root: Path, node: str, cpus: int, munge_socket: Path) -> str:
    return "\n".join([
        "ClusterName=dcpipetest", f"SlurmctldHost={node}", "SlurmUser=root",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "SchedulerType=sched/backfill", "MpiDefault=none",
        "ReturnToService=2", "SlurmdTimeout=60", "InactiveLimit=0", "KillWait=5",
        f"NodeName={node} CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


@pytest.fixture(scope="module")
def slurm() -> Slurm:
    """A started single-node SLURM, stopped after the module's tests."""
    why = _ensure_installed()
    if why:
        print(f"SKIP slurm: {why}")
        pytest.skip(why)
    if os.geteuid() != 0:
        print("SKIP slurm: starting munged and slurmd needs root")
        pytest.skip("starting munged and slurmd needs root")
    # Not under pytest's tmp folder: that one is private to root and munged runs as ``munge``.
    root = Path(tempfile.mkdtemp(prefix="dcpipe-slurm-"))
    root.chmod(0o755)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    node, cpus = socket.gethostname().split(".")[0], os.cpu_count() or 1
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_")) and v != "SLURM_CONF"]:
        del env[var]
    cluster = Slurm(root=root, env=env, node=node, cpus=cpus)
    try:
        sock, cluster.pid_files["munged"] = _start_munge(root, env)
        (root / "slurm.conf").write_text(_slurm_conf(root, node, cpus, sock))
        cluster.pid_files["slurmctld"] = root / "slurmctld.pid"
        cluster.pid_files["slurmd"] = root / "slurmd.pid"
        subprocess.run([_sbin("slurmctld"), "-i"], env=env, check=True, capture_output=True, text=True, timeout=60)
        subprocess.run([_sbin("slurmd")], env=env, check=True, capture_output=True, text=True, timeout=60)
        cluster.wait_idle()
    except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start SLURM: {exc} {detail}\n{cluster.logs()}")
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)
