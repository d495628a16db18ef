"""Reading the store as a catalog: open, list, show, diff, verify and garbage-collect versions."""
from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from pipeline.errors import UserError
from pipeline.store import checksums
from pipeline.store.layout import (LATEST, TRASH_PREFIX, DatasetRef, dataset_names, dead_scratch, drop_lock_file,
                                   leftovers, lock_files, version_lock, version_of_leftover, versions)
from pipeline.store.refs import is_rejected, resolve, tags


def open_version(ref: DatasetRef) -> xr.Dataset:
    """The stored dataset, lazily, with plain xarray."""
    if not ref.exists():
        raise UserError(f"{ref.path}: dataset version {ref} not found; see `dcpipe datasets list`")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
        return xr.open_zarr(ref.data_path, consolidated=True)


def open_dataset(name: str, version: str = LATEST, root: str | Path = "dcpipe-work/datasets") -> xr.Dataset:
    """The lazy xarray Dataset of ``name@version`` (``latest``: the newest) under ``root``.

    >>> ds = open_dataset("mnist", root="dcpipe-work/datasets")     # doctest: +SKIP
    >>> ds["image"].shape                                          # doctest: +SKIP
    (13000, 28, 28, 1)
    """
    return open_version(resolve(Path(root), name, version))


def catalog(root: Path) -> dict[str, list[DatasetRef]]:
    """Dataset name -> committed versions, oldest first."""
    return {name: versions(root, name) for name in dataset_names(root)}


def verify(ref: DatasetRef, threads: int = 2) -> list[checksums.Problem]:
    """Recompute every checksum of ``ref`` and check its manifest's seal; the problems found, naming
    arrays and chunks (``manifest.json: edited or damaged (seal ...)`` for an edited manifest)."""
    return checksums.verify(ref.path, ref.manifest(), threads)


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


DIFF_SECTIONS = ("config", "quality", "counts", "records_in", "records_out", "quarantined", "duplicates_dropped",
                 "chunking", "code", "variables")


def diff(a: dict, b: dict) -> list[str]:
    """What differs between two manifests, one line per field: ``key: A -> B``."""
    lines = []
    for section in DIFF_SECTIONS:
        fa, fb = _flatten(a.get(section), section), _flatten(b.get(section), section)
        for key in sorted(set(fa) | set(fb)):
            if fa.get(key) != fb.get(key):
                lines.append(f"{key}: {fa.get(key)!r} -> {fb.get(key)!r}")
    src_a = {s["name"]: s["sha256"] for s in a.get("sources", [])}
    src_b = {s["name"]: s["sha256"] for s in b.get("sources", [])}
    for name in sorted(set(src_a) | set(src_b)):
        if src_a.get(name) != src_b.get(name):
            short = lambda d: d[:12] if d else None  # noqa: E731
            lines.append(f"sources.{name}: {short(src_a.get(name))} -> {short(src_b.get(name))}")
    arr_a = a.get("checksums", {}).get("arrays", {})
    arr_b = b.get("checksums", {}).get("arrays", {})
    changed = sorted(n for n in set(arr_a) | set(arr_b) if arr_a.get(n) != arr_b.get(n))
    if changed:
        lines.append(f"stored content differs in: {', '.join(changed)}")
    return lines


@dataclass(frozen=True)
class Collected:
    """What gc removed (or would), the leftovers it cleaned, and the old versions it kept and why."""

    removed: list[DatasetRef]
    cleaned: list[Path]
    kept: list[tuple[DatasetRef, str]] = field(default_factory=list)


def _remove_version(ref: DatasetRef) -> bool:
    """Make ``ref`` vanish in one rename, then delete it and its lock file; False when its lock is held."""
    with version_lock(ref.root, ref.name, ref.version, blocking=False) as mine:
        if not mine:
            return False
        trash = ref.root / ref.name / f"{TRASH_PREFIX}{ref.version}-{os.getpid()}"
        os.rename(ref.path, trash)
        shutil.rmtree(trash)
        drop_lock_file(ref.root, ref.name, ref.version)
        return True


def _why_kept(ref: DatasetRef, protected: dict, tagged: dict[str, list[str]]) -> str | None:
    runs = protected.get(ref)
    if runs:
        shown = ", ".join(sorted(runs)[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        return f"referenced by run {shown}"
    if tagged.get(ref.version):
        return f"tagged {', '.join(sorted(tagged[ref.version]))}"
    return None


def _stale_locks(root: Path, dataset: str, dry_run: bool) -> list[Path]:
    """Lock files of versions that are neither committed nor being written (no holder)."""
    folder = Path(root) / dataset
    busy = {version_of_leftover(p) for p in leftovers(folder)}
    out = []
    for version, path in sorted(lock_files(folder).items()):
        if version in busy or DatasetRef(Path(root), dataset, version).path.exists():
            continue
        with version_lock(root, dataset, version, blocking=False) as free:
            if free:
                out.append(path)
                if not dry_run:
                    drop_lock_file(root, dataset, version)
    return out


def gc(root: Path, keep: int, name: str | None = None, dry_run: bool = False,
       protected: dict[DatasetRef, list[str]] | None = None) -> Collected:
    """Keep the ``keep`` newest versions of each dataset; delete older ones, dead staging and scratch
    folders and stale lock files.

    Never removed: a version in ``protected`` (ref -> ids of the runs that reference it), a tagged
    version, and the newest version that passed its gates (what ``latest`` resolves to).
    """
    if keep < 1:
        raise UserError(f"gc --keep must be at least 1 (got {keep}); the newest version is always kept")
    protected = protected or {}
    removed, cleaned, kept = [], [], []
    for dataset in [name] if name else dataset_names(root):
        known = versions(root, dataset)
        usable = [ref for ref in known if not is_rejected(ref.manifest())]
        tagged: dict[str, list[str]] = {}
        for tag_name, version in tags(root, dataset).items():
            tagged.setdefault(version, []).append(tag_name)
        for ref in known[:-keep]:
            why = _why_kept(ref, protected, tagged) or ("latest usable version" if usable and ref == usable[-1]
                                                        else None)
            if why:
                kept.append((ref, why))
            elif dry_run or _remove_version(ref):
                removed.append(ref)
        for path in leftovers(Path(root) / dataset):
            with version_lock(root, dataset, version_of_leftover(path), blocking=False) as free:
                if free:   # no live writer holds this version: the folder is a killed writer's
                    cleaned.append(path)
                    if not dry_run:
                        shutil.rmtree(path, ignore_errors=True)
        for path in dead_scratch(Path(root) / dataset):   # a killed prepare's staged rows
            cleaned.append(path)
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
        cleaned += _stale_locks(root, dataset, dry_run)
    return Collected(removed, cleaned, kept)
