"""An existing Zarr store or NetCDF file through xarray: ``values_var`` (sample first) and ``label_var``.

One partition per chunk of the sample dimension; ``line`` is the 1-based sample index.
"""
from __future__ import annotations

import hashlib

import dask.dataframe as dd
import numpy as np
import xarray as xr
from dask import delayed

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, label_text, make_records, records_meta, register
from pipeline.sources.files import resolve


def _open(path: str) -> xr.Dataset:
    try:
        if path.rstrip("/").endswith(".zarr"):
            return xr.open_zarr(path, chunks={})
        return xr.open_dataset(path, chunks={})
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: cannot be opened with xarray ({exc}); "
                        "give a .zarr store or a NetCDF file") from None


def _block(values: np.ndarray, labels: np.ndarray, source: str, first: int):
    flat = values.reshape(len(values), -1).astype("float64")
    raw = [f"sample {first + i}" for i in range(len(flat))]
    return make_records(source, np.arange(first, first + len(flat)), raw, None,
                        label_text(labels.tolist()), flat)


@register("xarray")
def read_xarray(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    is_zarr = cfg.path.rstrip("/").endswith(".zarr")
    ds = _open(cfg.path)
    for var in (cfg.values_var, cfg.label_var):
        if var not in ds.variables:
            raise UserError(f"{cfg.path}: no variable {var!r} (found {sorted(ds.variables)[:8]}); "
                            "set source.values_var / source.label_var")
    values, labels = ds[cfg.values_var], ds[cfg.label_var]
    n_values = int(np.prod(values.shape[1:]))
    if n_values != schema.n_fields - 1:
        raise UserError(f"{cfg.path}: {cfg.values_var} holds {n_values} values per sample but "
                        f"schema.n_fields - 1 is {schema.n_fields - 1}; fix schema.n_fields/image_shape")
    source = cfg.path.rstrip("/").rsplit("/", 1)[-1]
    data, lab = values.data, labels.data
    if not hasattr(data, "blocks"):
        import dask.array as da
        data, lab = da.from_array(data, chunks=(cfg.rows_per_partition,) + data.shape[1:]), da.from_array(lab)
    data = data.rechunk({i: -1 for i in range(1, data.ndim)})
    lab = lab.rechunk((data.chunks[0],))
    starts = np.concatenate([[1], 1 + np.cumsum(data.chunks[0])[:-1]])
    parts = [delayed(_block, pure=True)(data.blocks[i], lab.blocks[i], source, int(s))
             for i, s in enumerate(starts)]
    records = dd.from_delayed(parts, meta=records_meta(n_values), verify_meta=False)
    files = resolve(cfg.path.rstrip("/") + "/**") if is_zarr else resolve(cfg.path)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}\0{f.describe()['sha256']}\0".encode())
    inputs = [{"path": cfg.path, "name": source, "bytes": sum(f.size for f in files),
               "sha256": digest.hexdigest()}]
    return Ingested(records, inputs)
