"""One run's folder: the names of the files a run writes, its one-writer lock, atomic writes.

Layout of ``<workdir>/runs/<run-id>/``::

    config.yaml          the resolved job config (secrets masked)
    train_plan.json      what every rank reads (``models.plan.TrainPlan``)
    train.log            the launcher's and the ranks' output, line by line
    history.json         one record per finished epoch (rank 0)
    metrics.json         rank 0's final metrics: written once, when training ends
    rejected.json        only when the ranks cannot train the plan (its network cannot take the input)
    summary.json         the run's record: state (running / finished / failed), figures, paths
    lineage.json         model -> run -> dataset version -> config -> sources
    checkpoints/         ``models.checkpoint``
    tensorboard/         TensorBoard event files (rank 0)
    bundle/              the serving bundle (``models.export``); ``bundle/model/`` is the SavedModel
    model.keras          the trained network for Keras
    .lock                flock(2) held by the one process that writes the run

The lock dies with its process, so a run is *running* exactly while its lock is held; a summary
that still says running with no holder is a run that was *interrupted*.

>>> run = RunDir(Path("/tmp/w/runs/20261203-101500-ab12"))
>>> run.id, run.metrics.name
('20261203-101500-ab12', 'metrics.json')
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RunBusy(RuntimeError):
    """Another process holds the run's lock: it is running."""


@dataclass(frozen=True)
class RunDir:
    """Where one run's files live; the only place their names are spelled."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def id(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / "config.yaml")
    plan = property(lambda self: self.path / "train_plan.json")
    log = property(lambda self: self.path / "train.log")
    history = property(lambda self: self.path / "history.json")
    metrics = property(lambda self: self.path / "metrics.json")
    rejected = property(lambda self: self.path / "rejected.json")   # why the ranks cannot train the plan
    summary = property(lambda self: self.path / "summary.json")
    lineage = property(lambda self: self.path / "lineage.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    tensorboard = property(lambda self: self.path / "tensorboard")
    bundle = property(lambda self: self.path / "bundle")
    model = property(lambda self: self.path / "model.keras")
    saved_model = property(lambda self: self.path / "bundle" / "model")
    lock_file = property(lambda self: self.path / ".lock")

    @contextlib.contextmanager
    def lock(self) -> Iterator["RunDir"]:
        """Hold the run's write lock for the block; ``RunBusy`` when another process holds it."""
        fd = os.open(self.lock_file, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunBusy(f"{self.path}: run {self.id} is running (another process holds "
                              f"{self.lock_file.name})") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield self
        finally:
            os.close(fd)

    def is_locked(self) -> bool:
        """True while some process holds the run's lock (the run is running)."""
        if not self.lock_file.exists():
            return False
        fd = os.open(self.lock_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def new_run_id(now: datetime | None = None) -> str:
    """``<UTC time>-<4 hex>``, e.g. ``20261203-101500-ab12``: sorts by start time."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one, never half:
    a temporary file in the same folder, fsynced, renamed over ``path``, the folder fsynced."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write (a file or a folder); when the block ends without an
    error it takes ``path``'s place in one rename, so a reader never sees half of it.

    The temporary name keeps ``path``'s suffix (Keras wants ``.keras``)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if path.is_dir():          # rename(2) cannot replace a folder that is not empty
        shutil.rmtree(path)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
