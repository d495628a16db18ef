"""A tiny deterministic dataset and a publish helper for the store tests (also run in subprocesses)."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.config import StoreConfig
from pipeline.store import DatasetRef, publish

N, SIDE = 300, 8
VERSION = "00c0ffee00c0ffee"


def _slow(block: np.ndarray, delay: float) -> np.ndarray:
    time.sleep(delay)
    return block


def tiny_dataset(seed: int = 0, delay: float = 0.0) -> xr.Dataset:
    """300 8x8 float32 images with labels; ``delay`` seconds of work per 32-sample block."""
    rng = np.random.default_rng(seed)
    images = np.round(rng.random((N, SIDE, SIDE, 1)), 2).astype("float32")
    labels = rng.integers(0, 10, N).astype("int16")
    image = da.from_array(images, chunks=(32, SIDE, SIDE, 1))
    if delay:
        image = image.map_blocks(_slow, delay, dtype="float32")
    return xr.Dataset({"image": (("sample", "height", "width", "channel"), image),
                       "label": ("sample", da.from_array(labels, chunks=32))}, attrs={"dataset": "tiny"})


def as_stored(ds: xr.Dataset, version: str = VERSION) -> xr.Dataset:
    """``ds`` as a reader opens it after publishing: with the CF and version attributes the store adds."""
    from pipeline.store import cf_attributes
    return cf_attributes(ds).assign_attrs(version=version)


def quarantine() -> pd.DataFrame:
    return pd.DataFrame({"source": ["a.csv"], "line": [7], "raw": ["1,2"], "reason": ["wrong_field_count"]})


def store_config(**fields) -> StoreConfig:
    """32 samples of 8x8 float32 (256 bytes each) per chunk: 8 KiB chunks, stored as float32 so
    that arbitrary values round-trip exactly (uint8 packing has its own tests)."""
    return StoreConfig(**{"chunk_bytes": 32 * SIDE * SIDE * 4, "image_dtype": "float32", **fields})


def publish_tiny(root: Path, version: str = VERSION, seed: int = 0, delay: float = 0.0, name: str = "tiny",
                 cfg: StoreConfig | None = None, **manifest):
    ref = DatasetRef(root=Path(root), name=name, version=version)
    base = {"created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "records_in": N + 1, "records_out": N, "counts": {"train": N}, "quarantined": {"wrong_field_count": 1},
            "config": {"seed": seed, "store": (cfg or store_config()).model_dump()},
            "sources": [{"path": "/data/a.csv", "name": "a.csv", "bytes": 10, "sha256": f"{seed:064x}"}]}
    return publish(tiny_dataset(seed, delay), quarantine(), {**base, **manifest}, ref, cfg or store_config())
