"""Where versions live, which names are allowed, and the per-version write lock.

Layout under a root folder::

    <root>/<dataset>/<version>/manifest.json        committed last: a version exists iff it is here
    <root>/<dataset>/<version>/checksums.json       SHA-256 of every stored file (every Zarr chunk)
    <root>/<dataset>/<version>/data.zarr            xarray Dataset, Zarr format 3, consolidated
    <root>/<dataset>/<version>/quarantine.parquet   rows that failed validation, with their reason
    <root>/<dataset>/.staging-<version>-<pid>-<tag> a version being written (never read)
    <root>/<dataset>/.lock-<version>                flock(2) held by the one writer of that version
    <root>/<dataset>/.scratch-<version>-<pid>-<tag> rows a prepare staged between cleaning passes
    <root>/<dataset>/tags.json                      tag -> version (``refs``)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError

MANIFEST = "manifest.json"
CHECKSUMS = "checksums.json"
DATA = "data.zarr"
QUARANTINE = "quarantine.parquet"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
LOCK_PREFIX = ".lock-"
SCRATCH_PREFIX = ".scratch-"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
VERSION_RE = re.compile(r"^[0-9a-f]{8,64}$")
LATEST = "latest"


def check_name(name: str) -> str:
    """``name`` if it is a safe dataset name (one path component, no leading dot), else UserError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UserError(f"dataset name {name!r} is not allowed; use 1-64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit (e.g. mnist)")
    return name


def check_version(version: str) -> str:
    """``version`` if it is a content-hash version id (8-64 lowercase hex digits), else UserError."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise UserError(f"dataset version {version!r} is not allowed; a version is 8-64 lowercase hex "
                        "digits (e.g. 3f2a9c0d1b7e4a55) or 'latest'")
    return version


@dataclass(frozen=True)
class DatasetRef:
    """Where one version lives; ``str(ref)`` is ``NAME@VERSION``."""

    root: Path
    name: str
    version: str

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))
        check_name(self.name)
        check_version(self.version)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def path(self) -> Path:
        return self.root / self.name / self.version

    @property
    def data_path(self) -> Path:
        return self.path / DATA

    def exists(self) -> bool:
        """True once the version is committed (its manifest is in place)."""
        return (self.path / MANIFEST).is_file()

    def manifest(self) -> dict:
        """The committed manifest (plain JSON)."""
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            raise UserError(f"{self.path}: dataset version {self} not found; see `dcpipe datasets list`") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.path / MANIFEST}: unreadable manifest ({exc}); "
                            f"run `dcpipe datasets verify {self}`") from None


def dataset_names(root: Path) -> list[str]:
    """Names of the datasets under ``root`` that have at least one committed version."""
    if not Path(root).is_dir():
        return []
    return sorted(p.name for p in Path(root).iterdir() if NAME_RE.match(p.name) and versions(root, p.name))


def versions(root: Path, name: str) -> list[DatasetRef]:
    """The committed versions of ``name``, oldest first (by manifest ``created``, then commit time)."""
    folder = Path(root) / check_name(name)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if VERSION_RE.match(path.name) and (path / MANIFEST).is_file():
            ref = DatasetRef(root=Path(root), name=name, version=path.name)
            found.append(((ref.manifest().get("created", ""), (path / MANIFEST).stat().st_mtime_ns), ref))
    return [ref for _, ref in sorted(found, key=lambda item: item[0])]


def lock_path(root: Path, name: str, version: str) -> Path:
    return Path(root) / check_name(name) / f"{LOCK_PREFIX}{check_version(version)}"


@contextlib.contextmanager
def version_lock(root: Path, name: str, version: str, blocking: bool = True):
    """Hold the exclusive write lock of one version; yields False when ``blocking`` is off and it is taken.

    ``flock`` locks die with their process, so a killed writer never leaves a stale lock. gc removes
    a lock file while holding it (:func:`drop_lock_file`); a process that locked the removed file
    sees that its inode is no longer at the path and locks the new file instead.
    """
    folder = Path(root) / check_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(root, name, version)
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield True
                return
        finally:
            os.close(fd)


def drop_lock_file(root: Path, name: str, version: str) -> None:
    """Remove the lock file of ``version``; call it only while holding that lock."""
    with contextlib.suppress(FileNotFoundError):
        lock_path(root, name, version).unlink()


def lock_files(folder: Path) -> dict[str, Path]:
    """Version -> its lock file, for every ``.lock-<version>`` in a dataset folder."""
    if not folder.is_dir():
        return {}
    return {p.name[len(LOCK_PREFIX):]: p for p in folder.iterdir()
            if p.name.startswith(LOCK_PREFIX) and VERSION_RE.match(p.name[len(LOCK_PREFIX):])}


def leftovers(folder: Path, version: str | None = None) -> list[Path]:
    """Staging and trash folders in a dataset folder (of one version when given)."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.iterdir():
        for prefix in (STAGING_PREFIX, TRASH_PREFIX):
            if path.name.startswith(prefix):
                own = path.name[len(prefix):].split("-", 1)[0]
                if version is None or own == version:
                    out.append(path)
    return sorted(out)


def version_of_leftover(path: Path) -> str:
    for prefix in (STAGING_PREFIX, TRASH_PREFIX):
        if path.name.startswith(prefix):
            return path.name[len(prefix):].split("-", 1)[0]
    raise ValueError(f"{path} is not a staging or trash folder")


def scratch_folder(root: Path, name: str, version: str) -> Path:
    """A new folder name for one prepare's intermediate files of ``version`` (every worker must see
    ``root``, as for the store); the prepare removes it, gc removes one whose process is gone."""
    tag = os.urandom(3).hex()
    return Path(root) / check_name(name) / f"{SCRATCH_PREFIX}{check_version(version)}-{os.getpid()}-{tag}"


def dead_scratch(folder: Path) -> list[Path]:
    """Scratch folders of a dataset folder whose prepare process no longer runs (on this host)."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.iterdir():
        parts = path.name[len(SCRATCH_PREFIX):].split("-") if path.name.startswith(SCRATCH_PREFIX) else []
        if len(parts) == 3 and parts[1].isdigit() and not _alive(int(parts[1])):
            out.append(path)
    return sorted(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
