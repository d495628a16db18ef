"""The working folder: the one place its layout is spelled.

::

    <workdir>/datasets/   the dataset store (``pipeline.store``)
    <workdir>/runs/       one folder per run (``models.rundir.RunDir``)

>>> Workdir(Path("/tmp/w")).runs
PosixPath('/tmp/w/runs')
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.rundir import RUN_ID_RE, RunDir, new_run_id
from pipeline.errors import UserError


@dataclass(frozen=True)
class Workdir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).resolve())

    @classmethod
    def open(cls, path: str | Path) -> "Workdir":
        """The working folder at ``path``, created if needed; a one-line error when not writable."""
        workdir = cls(Path(path))
        try:
            workdir.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{workdir.path}: cannot create the working folder ({exc.strerror}); "
                            "choose a writable --workdir") from None
        if not os.access(workdir.path, os.W_OK):
            raise UserError(f"{workdir.path}: working folder is not writable; choose a writable --workdir")
        return workdir

    @property
    def datasets(self) -> Path:
        return self.path / "datasets"

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    def new_run(self) -> RunDir:
        """A fresh, empty run folder."""
        run = RunDir(self.runs / new_run_id())
        run.path.mkdir(parents=True)
        return run

    def run(self, run: str) -> RunDir:
        """``run`` as a run folder: a run id under ``runs/``, or a path (it has a ``/``)."""
        if "/" in run:
            folder = RunDir(Path(run))
        elif RUN_ID_RE.match(run):
            folder = RunDir(self.runs / run)
        else:
            raise UserError(f"run id {run!r} is not allowed; give an id like 20261122-052300-ab12 "
                            "(see `dcpipe runs list`) or the path of a run folder")
        if not folder.path.is_dir():
            raise UserError(f"{folder.path}: no such run; see `dcpipe runs list --workdir {self.path}`")
        return folder

    def run_dirs(self) -> list[RunDir]:
        """Every run folder, oldest first (run ids sort by start time)."""
        if not self.runs.is_dir():
            return []
        return [RunDir(p) for p in sorted(self.runs.iterdir()) if p.is_dir() and RUN_ID_RE.match(p.name)]
