"""How arrays are stored: the codec registry and chunking by a target size in bytes (no I/O).

Every variable along ``sample`` is cut at the same sample boundaries, so one chunk index covers the
same samples in every array. The rows per chunk come from the widest variable per sample (the
image) and ``StoreConfig.chunk_bytes``, unless ``StoreConfig.chunk_rows`` sets them directly.

With ``StoreConfig.image_dtype: uint8`` the ``image`` variable (values in [0, 1]) is packed the
CF way: stored as ``round(x * 255)`` in uint8 with ``scale_factor = 1/255`` as an exact float64
(``255 * (1/255) == 1.0`` in float64; the float32 ``1/255`` decodes 255 to 1.0000000591), which
``xr.open_zarr`` decodes to float64 in exactly [0, 1] and ``models.data`` to float32. Chunk sizes
still count decoded bytes.

:func:`cf_attributes` gives the variables the CF attributes a reader without dcpipe looks for
(``long_name``, ``units``, ``flag_values``/``flag_meanings`` on ``label``).
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import xarray as xr
import zarr.codecs

from pipeline.config import StoreConfig

SAMPLE = "sample"
#: CF packing of a [0, 1] image as uint8 (xarray rounds on encode); float64 so 255 decodes to 1.0 exactly.
UINT8_UNIT = {"dtype": "uint8", "scale_factor": np.float64(1 / 255), "add_offset": np.float64(0), "_FillValue": None}

#: CF ``long_name``/``units`` of the variables a prepared dataset holds ("1": dimensionless).
CF_NAMES = {
    "image": {"long_name": "pixel intensity", "units": "1"},
    "tokens": {"long_name": "token id"},
    "label": {"long_name": "class label"},
    "split": {"long_name": "split of the sample"},
    "source_file": {"long_name": "source file of the sample"},
    "source_line": {"long_name": "line of the sample in its source file"},
    "augmented": {"long_name": "sample is an augmented copy"},
}


def _zstd(level: int):
    return zarr.codecs.ZstdCodec(level=level)


def _lz4(level: int):
    from zarr.codecs.numcodecs import LZ4
    with warnings.catch_warnings():  # numcodecs' LZ4 is a zarr-python extension, outside the v3 spec
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
        return LZ4(acceleration=max(level, 1))


def _blosc(cname: str):
    return lambda level: zarr.codecs.BloscCodec(cname=cname, clevel=min(level, 9), shuffle="shuffle")


#: codec name -> factory(level) of the Zarr v3 compressor; ``none`` stores raw bytes.
CODECS: dict[str, Callable[[int], object] | None] = {
    "zstd": _zstd,
    "lz4": _lz4,
    "blosc-lz4": _blosc("lz4"),
    "blosc-zstd": _blosc("zstd"),
    "none": None,
}


def register_codec(name: str, factory: Callable[[int], object]) -> None:
    """Make ``name`` usable as ``store.codec`` (the config must list it too)."""
    CODECS[name] = factory


def compressors(codec: str, level: int) -> tuple:
    factory = CODECS[codec]
    return () if factory is None else (factory(level),)


def rows_per_chunk(bytes_per_sample: int, chunk_bytes: int) -> int:
    """Samples per chunk so a chunk holds at most ``chunk_bytes`` (at least one sample)."""
    if bytes_per_sample < 1 or chunk_bytes < 1:
        raise ValueError(f"bytes_per_sample and chunk_bytes must be positive "
                         f"(got {bytes_per_sample}, {chunk_bytes})")
    return max(1, chunk_bytes // bytes_per_sample)


def sample_bytes(ds: xr.Dataset) -> int:
    """Uncompressed bytes of one sample of the widest variable along ``sample``."""
    widths = [int(np.prod([n for d, n in zip(v.dims, v.shape) if d != SAMPLE])) * v.dtype.itemsize
              for v in ds.data_vars.values() if SAMPLE in v.dims]
    return max(widths, default=1)


def chunk_rows(cfg: StoreConfig, bytes_per_sample: int) -> int:
    """The rows per chunk ``cfg`` asks for, for samples of ``bytes_per_sample`` bytes."""
    return cfg.chunk_rows or rows_per_chunk(bytes_per_sample, cfg.chunk_bytes)


def label_flags(label_names: list[str]) -> dict:
    """CF ``flag_values``/``flag_meanings`` of the stored labels: the number itself when every name is
    an int (as ``pipeline.validate.label_codes`` stores them), else the name's position.

    >>> label_flags(["cat", "dog"])
    {'flag_values': [0, 1], 'flag_meanings': 'cat dog'}
    """
    names = [str(n) for n in label_names]
    values = [int(n) for n in names] if all(n.lstrip("-").isdigit() for n in names) else list(range(len(names)))
    return {"flag_values": values, "flag_meanings": " ".join(n.replace(" ", "_") for n in names)}


def cf_attributes(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with :data:`CF_NAMES` and the label flags (from the ``label_names`` attribute) added to
    its variables; attributes a variable already has are kept."""
    out = ds.copy()
    for name, attrs in CF_NAMES.items():
        if name in out.variables:
            extra = label_flags(ds.attrs["label_names"]) if name == "label" and "label_names" in ds.attrs else {}
            out[name].attrs = {**attrs, **extra, **out[name].attrs}
    return out


def packable(ds: xr.Dataset, cfg: StoreConfig) -> xr.Dataset:
    """``ds`` with the image clipped to [0, 1] when it is packed as uint8 (lazy), so that a value
    outside, e.g. an imputed ``fill_value`` beyond the schema's range, saturates instead of
    wrapping around; NaN cannot reach here (missing values are dropped or imputed before)."""
    if "image" in ds.data_vars and cfg.image_dtype == "uint8":
        return ds.assign(image=ds["image"].clip(0, 1))
    return ds


def encoding(ds: xr.Dataset, cfg: StoreConfig, rows: int) -> dict:
    """``to_zarr`` encoding: ``rows`` samples per chunk, whole along the other axes, ``cfg``'s codec."""
    enc = {}
    for name, var in ds.variables.items():
        if SAMPLE in var.dims:
            chunks = tuple(min(rows, n) if d == SAMPLE else n for d, n in zip(var.dims, var.shape))
            enc[name] = {"compressors": compressors(cfg.codec, cfg.level),
                         "chunks": tuple(max(c, 1) for c in chunks)}
    if "image" in enc and cfg.image_dtype == "uint8":
        enc["image"].update(UINT8_UNIT)
    return enc


def describe_variables(ds: xr.Dataset, enc: dict | None = None) -> dict:
    """name -> dims, shape, stored dtype and chunk shape, for the manifest."""
    enc = enc or {}
    out = {}
    for name, var in ds.data_vars.items():
        chunks = enc.get(name, {}).get("chunks") or (
            [c[0] if c else 0 for c in var.chunks] if var.chunks else list(var.shape))
        out[name] = {"dims": list(var.dims), "shape": list(var.shape),
                     "dtype": str(np.dtype(enc.get(name, {}).get("dtype", var.dtype))),
                     "chunks": [int(c) for c in chunks]}
    return out
