"""Supervised processes: a launcher command whose whole tree lives and dies with this process.

:func:`supervise` runs a command (``horovodrun``, ``srun``, ``mpirun``) so that its ranks cannot
outlive the process that started it:

- the command runs in its own session, with a parent-death signal (``PR_SET_PDEATHSIG``, Linux):
  killing this process with SIGKILL kills the launcher command;
- SIGTERM or SIGINT to this process ends the command's whole process tree and every process that
  names the run (SIGTERM, then SIGKILL after a grace) before it is re-raised;
- its output is appended to the run's log a line at a time, flushed.

The third tie, each rank watching this process, is ``models.train.watch_supervisor``.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:   # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _proc_table() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process /proc lists."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    table[int(entry)] = (ppid, fh.read())
            except (OSError, IndexError, ValueError):
                continue
    return table


def ancestors(pid: int, table: dict[int, tuple[int, bytes]]) -> set[int]:
    """``pid`` and its parent, grandparent, ... up to init."""
    out = set()
    while pid in table and pid not in out:
        out.add(pid)
        pid = table[pid][0]
    return out | {pid}


def run_processes(marker: str, table: dict[int, tuple[int, bytes]] | None = None) -> list[int]:
    """Pids whose command line contains ``marker`` (e.g. a run's plan path), other than this process
    and its ancestors (a shell or an application that names the plan is not a rank)."""
    table = _proc_table() if table is None else table
    mine = ancestors(os.getpid(), table)
    return [pid for pid, (_, cmd) in table.items() if marker.encode() in cmd and pid not in mine]


def descendants(pid: int, table: dict[int, tuple[int, bytes]] | None = None) -> list[int]:
    """``pid``'s children, their children, and so on."""
    table = _proc_table() if table is None else table
    out, frontier = [], [pid]
    while frontier:
        frontier = [p for p, (ppid, _) in table.items() if ppid in frontier]
        out += frontier
    return out


def end_processes(proc: subprocess.Popen | None, marker: str, grace: float = 5.0) -> None:
    """End ``proc`` (when given: it, its process group and its descendants) and every process
    naming ``marker``: SIGTERM, then SIGKILL to what is left after ``grace`` seconds."""
    table = _proc_table()
    pids = set(run_processes(marker, table)) | (set(descendants(proc.pid, table)) if proc is not None else set())

    def running() -> bool:
        return (proc is not None and proc.poll() is None) or any(map(process_alive, pids))

    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and running():
            time.sleep(0.05)
        if not running():
            break
    if proc is not None:
        proc.wait()


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the thread that started it dies (Linux)."""

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG = 1
        if os.getppid() != parent:      # the parent died before prctl took effect
            os._exit(1)

    return preexec


class _Stop(BaseException):
    def __init__(self, signum: int):
        self.signum = signum


@contextlib.contextmanager
def _signals_raise():
    """The first SIGTERM or SIGINT raises ``_Stop`` in the block, later ones are ignored while it
    ends the ranks (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def handler(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise _Stop(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def supervise(cmd: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, marker: str,
              log=print, grace: float = 5.0) -> int:
    """Run ``cmd`` to its end and return its exit code; its output is appended to ``log_path`` a
    line at a time (flushed) and its ``[train]`` and error lines passed to ``log``.

    The command runs in its own session and dies with this process (SIGKILL included); SIGTERM or
    SIGINT here ends its whole process tree and every process naming ``marker`` (SIGTERM, SIGKILL
    after ``grace`` s) and is re-raised as ``SystemExit(143)`` or ``KeyboardInterrupt``; so does
    any other exception. Stragglers naming ``marker`` are ended after a normal exit as well.
    """
    with open(log_path, "a", buffering=1) as out, _signals_raise():
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
                                start_new_session=True, preexec_fn=_die_with(os.getpid()))
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if "[train]" in line or "Error" in line or "error" in line:
                    log(line.rstrip())
            proc.wait()
        except _Stop as stop:
            end_processes(proc, marker, grace)
            out.write(f"[launch] signal {stop.signum}: ended the ranks\n")
            if stop.signum == signal.SIGINT:
                raise KeyboardInterrupt from None
            raise SystemExit(128 + stop.signum) from None
        except BaseException:
            end_processes(proc, marker, grace)
            raise
        finally:
            proc.stdout.close()
        if run_processes(marker):      # a rank that outlived its launcher
            end_processes(proc, marker, grace)
        return proc.returncode
