"""Atomic publish: write a version under a staging name, commit its manifest last, rename into place.

Under the version's lock: if the version is already committed (another process won), it is reused;
otherwise staging folders left by killed writers are removed, the data, the quarantine table and
the checksum index are written to a fresh staging folder (every file and folder fsynced as it is
hashed), the sealed manifest is written and fsynced last, and one ``rename`` makes the folder
visible as ``<root>/<dataset>/<version>``; the dataset folder is fsynced after it.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import dask
import pandas as pd
import xarray as xr

from models.rundir import fsync_dir
from pipeline.config import StoreConfig
from pipeline.errors import UserError
from pipeline.store import checksums
from pipeline.store.encoding import (SAMPLE, cf_attributes, chunk_rows, describe_variables, encoding, packable,
                                     sample_bytes)
from pipeline.store.layout import (DATA, MANIFEST, QUARANTINE, STAGING_PREFIX, DatasetRef, leftovers,
                                   version_lock, versions)


@dataclass(frozen=True)
class Publication:
    """The committed version; ``reused`` when another writer had already committed it."""

    ref: DatasetRef
    manifest: dict
    reused: bool


def _writable_folder(root: Path, name: str) -> Path:
    folder = Path(root) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{folder}: cannot write the dataset store ({exc.strerror}); "
                        "choose a writable --workdir or store root") from None
    return folder


def _dask_compute(writes: list) -> None:
    dask.compute(*writes)


def _write_data(ds: xr.Dataset, quarantine, staging: Path, cfg: StoreConfig, ref: DatasetRef,
                compute=_dask_compute) -> dict:
    rows = chunk_rows(cfg, sample_bytes(ds))
    ds = cf_attributes(ds).assign_attrs(dataset=ref.name, version=ref.version)
    if SAMPLE in ds.dims:
        ds = ds.chunk({SAMPLE: rows})
    ds = packable(ds, cfg)
    enc = encoding(ds, cfg, rows)
    with warnings.catch_warnings():  # xarray and zarr-python read consolidated v3 metadata fine
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
        # packed images are clipped to [0, 1] (``packable``) and hold no NaN: no fill value needed
        warnings.filterwarnings("ignore", message="saving variable .* without any _FillValue")
        writes = [ds.to_zarr(staging / DATA, mode="w-", zarr_format=3, consolidated=True, encoding=enc,
                             compute=False)]
        if quarantine is not None and hasattr(quarantine, "npartitions"):   # Dask: one file per partition
            writes.append(quarantine.to_parquet(staging / QUARANTINE, write_index=False, compute=False))
        compute(writes)   # the version's one compute
    if quarantine is not None and not hasattr(quarantine, "npartitions"):
        quarantine.to_parquet(staging / QUARANTINE, index=False)
    return {"variables": describe_variables(ds, enc),
            "chunking": {"rows": rows, "sample_bytes": sample_bytes(ds), "chunk_bytes": rows * sample_bytes(ds),
                         "codec": cfg.codec, "level": cfg.level}}


def open_written(folder: Path) -> tuple[xr.Dataset | None, pd.DataFrame | None]:
    """(the data, the quarantine table) of a version folder as written so far: what ``extra_files``
    may look at (e.g. the report's image montage and quarantine examples); lazy data, None if absent."""
    data = folder / DATA
    ds = xr.open_zarr(data, consolidated=True) if data.exists() else None
    quarantine = pd.read_parquet(folder / QUARANTINE) if (folder / QUARANTINE).exists() else None
    return ds, quarantine


def _clean_leftovers(folder: Path, ref: DatasetRef, log) -> None:
    """Remove what killed writers of this version left (we hold its lock: nobody is writing it)."""
    for path in leftovers(folder, ref.version):
        log(f"Removing {path.name}, left by an interrupted writer of {ref}")
        shutil.rmtree(path, ignore_errors=True)
    if ref.path.exists() and not ref.exists():   # a folder without a manifest is never a version
        shutil.rmtree(ref.path, ignore_errors=True)


def publish(ds: xr.Dataset, quarantine, manifest: dict, ref: DatasetRef, cfg: StoreConfig,
            log=lambda *_: None, extra_files=None, compute=_dask_compute, show_progress: bool = False) -> Publication:
    """Write ``ds`` (its one compute) and ``quarantine`` as version ``ref``, atomically.

    ``manifest`` is what the caller knows (counts, sources, config); the store adds the parent
    version, the variables, the chunking, the checksums and the seal, and commits it last.
    ``extra_files(folder)``, if given, writes more files (e.g. the quality report) into the
    version before its checksums are taken (:func:`open_written` reads what is there).
    ``compute(writes)`` runs the writes (default
    ``dask.compute``; prepare names the tasks by stage and shows their progress,
    :mod:`pipeline.progress`); ``show_progress`` shows the checksums' progress through ``log``.
    """
    folder = _writable_folder(ref.root, ref.name)
    with version_lock(ref.root, ref.name, ref.version):
        if ref.exists():
            return Publication(ref, ref.manifest(), reused=True)
        _clean_leftovers(folder, ref, log)
        earlier = versions(ref.root, ref.name)
        staging = folder / f"{STAGING_PREFIX}{ref.version}-{os.getpid()}-{secrets.token_hex(3)}"
        staging.mkdir()
        stored = _write_data(ds, quarantine, staging, cfg, ref, compute)
        if extra_files is not None:
            extra_files(staging)
        committed = {**manifest, "dataset": ref.name, "version": ref.version,
                     "parent_version": earlier[-1].version if earlier else None, **stored,
                     "checksums": checksums.write_index(staging, show_progress=show_progress, log=log)}
        committed[checksums.SEAL] = checksums.manifest_seal(committed)
        with open(staging / MANIFEST, "w") as fh:
            fh.write(json.dumps(committed, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(staging)
        os.rename(staging, ref.path)   # the commit: the version appears whole, or not at all
        fsync_dir(folder)
    return Publication(ref, committed, reused=False)
