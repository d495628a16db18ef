"""The dataset store: the only module that touches Zarr paths.

Layout under a root folder::

    <root>/<dataset>/<version>/manifest.json      committed last: a version exists iff it is here
    <root>/<dataset>/<version>/data.zarr          xarray Dataset, Zarr format 3, consolidated
    <root>/<dataset>/<version>/quarantine.parquet rows that failed validation, with their reason

A version is written under ``<root>/<dataset>/.staging-<version>-<pid>`` and renamed into place in
one step once its manifest is written, so a reader never sees half a version.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import xarray as xr
import zarr.codecs

from pipeline.config import StoreConfig
from pipeline.errors import UserError

MANIFEST = "manifest.json"
DATA = "data.zarr"
QUARANTINE = "quarantine.parquet"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class DatasetRef:
    """Where one version lives; ``str(ref)`` is ``NAME@VERSION``."""

    root: Path
    name: str
    version: str

    def __post_init__(self):
        for field, value in (("dataset name", self.name), ("version", self.version)):
            if not _NAME.match(value):
                raise UserError(f"{field} {value!r} is not allowed; use letters, digits, '.', '_' or '-'")

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def path(self) -> Path:
        return self.root / self.name / self.version

    @property
    def data_path(self) -> Path:
        return self.path / DATA

    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())


def _compressors(cfg: StoreConfig) -> tuple:
    if cfg.codec == "zstd":
        return (zarr.codecs.ZstdCodec(level=cfg.level),)
    if cfg.codec == "blosc-lz4":
        return (zarr.codecs.BloscCodec(cname="lz4", clevel=min(cfg.level, 9), shuffle="shuffle"),)
    return ()


def _encoding(ds: xr.Dataset, cfg: StoreConfig) -> dict:
    enc = {}
    for name, var in ds.variables.items():
        if "sample" in var.dims:
            chunks = tuple(cfg.chunk_rows if d == "sample" else n for d, n in zip(var.dims, var.shape))
            enc[name] = {"compressors": _compressors(cfg), "chunks": chunks}
    return enc


def describe_variables(ds: xr.Dataset) -> dict:
    return {name: {"dims": list(var.dims), "shape": list(var.shape), "dtype": str(var.dtype),
                   "chunks": [c[0] if c else 0 for c in var.chunks] if var.chunks else None}
            for name, var in ds.data_vars.items()}


def _prepare_root(root: Path, name: str) -> Path:
    folder = root / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{folder}: cannot write the dataset store ({exc.strerror}); "
                        "choose a writable --workdir") from None
    return folder


def publish(ds: xr.Dataset, quarantine: dd.DataFrame, manifest: dict, ref: DatasetRef,
            cfg: StoreConfig) -> dict:
    """Write ``ds`` (one compute) and the quarantine table, then commit the manifest.

    Returns the manifest as committed, with ``quarantined`` (reason -> count) filled in.
    """
    folder = _prepare_root(ref.root, ref.name)
    staging = folder / f".staging-{ref.version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with warnings.catch_warnings():  # xarray and zarr-python read consolidated v3 metadata fine
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(staging / DATA, mode="w", zarr_format=3, consolidated=True, encoding=_encoding(ds, cfg))
    quarantine.to_parquet(staging / QUARANTINE, write_index=False)
    reason_counts = quarantine["reason"].value_counts().compute()
    committed = {**manifest, "quarantined": {str(k): int(v) for k, v in reason_counts.items()},
                 "variables": describe_variables(ds)}
    (staging / MANIFEST).write_text(json.dumps(committed, indent=2, sort_keys=False) + "\n")
    try:
        staging.rename(ref.path)
    except OSError:  # another writer published the same version first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
        if not ref.exists():
            raise
        return ref.manifest()
    return committed


def open_version(ref: DatasetRef) -> xr.Dataset:
    """The stored dataset, lazily, with plain xarray."""
    if not ref.exists():
        raise UserError(f"{ref.path}: dataset version {ref} not found; run `dcpipe run` to prepare it")
    return xr.open_zarr(ref.data_path, consolidated=True)


def split_ranges(split: np.ndarray) -> dict[str, list[int]]:
    """[start, stop) of each split in a stored ``split`` variable ordered by split."""
    names = ("train", "val", "test")
    return {n: [int(np.searchsorted(split, i, "left")), int(np.searchsorted(split, i, "right"))]
            for i, n in enumerate(names)}
