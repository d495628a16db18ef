"""Augment: extra copies of the train split, reproducible whatever the number of workers.

The train range is cut into fixed blocks of ``chunk_rows`` samples (the cut depends only on the
config), and block ``k`` is augmented with a generator seeded by ``(seed, k)``. Each output block
holds the block's originals followed by its copies, so originals and copies stay side by side
and a contiguous shard of the train range holds both.
"""
from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage

from pipeline.config import AugmentConfig


def _augment_image(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """One random rotation, integer shift and gaussian noise of an (h, w, c) image in [0, 1]."""
    out = img
    if cfg.max_rotation > 0:
        angle = rng.uniform(-cfg.max_rotation, cfg.max_rotation)
        out = ndimage.rotate(out, angle, axes=(1, 0), reshape=False, order=1, mode="constant")
    if cfg.max_shift > 0:
        dy, dx = rng.integers(-cfg.max_shift, cfg.max_shift + 1, size=2)
        out = ndimage.shift(out, (dy, dx, 0), order=0, mode="constant")
    if cfg.noise_std > 0:
        out = out + rng.normal(0.0, cfg.noise_std, size=out.shape)
    return np.clip(out, 0.0, 1.0).astype(img.dtype)


def _augment_block(block: np.ndarray, cfg: AugmentConfig, seed: int, block_id=None) -> np.ndarray:
    rng = np.random.default_rng([seed, block_id[0]])
    copies = [np.stack([_augment_image(img, rng, cfg) for img in block]) for _ in range(cfg.copies)]
    return np.concatenate([block, *copies], axis=0)


def _repeat_block(block: np.ndarray, times: int) -> np.ndarray:
    return np.concatenate([block] * times, axis=0)


def _flag_block(block: np.ndarray, copies: int) -> np.ndarray:
    return np.concatenate([np.zeros(len(block), bool)] + [np.ones(len(block), bool)] * copies)


def augment_train(ds: xr.Dataset, n_train: int, cfg: AugmentConfig, seed: int,
                  chunk_rows: int) -> xr.Dataset:
    """``ds`` with ``cfg.copies`` augmented copies of its first ``n_train`` samples; lazy."""
    if cfg.copies == 0 or n_train == 0:
        return ds.chunk({"sample": chunk_rows})
    times = 1 + cfg.copies
    train = ds.isel(sample=slice(0, n_train)).chunk({"sample": chunk_rows})
    out_rows = tuple(c * times for c in train.chunks["sample"])
    grown = {}
    for name, var in train.data_vars.items():
        arr = var.data
        chunks = (out_rows,) + arr.chunks[1:]
        if name == "image":
            data = da.map_blocks(_augment_block, arr, cfg, seed, chunks=chunks, dtype=arr.dtype,
                                 token="augment-image")
        elif name == "augmented":
            data = da.map_blocks(_flag_block, arr, cfg.copies, chunks=chunks, dtype=bool, token="augment-flag")
        else:
            data = da.map_blocks(_repeat_block, arr, times, chunks=chunks, dtype=arr.dtype, token=f"augment-{name}")
        grown[name] = (var.dims, data, var.attrs)
    train = xr.Dataset(grown, attrs=ds.attrs)
    rest = ds.isel(sample=slice(n_train, None))
    return xr.concat([train, rest], dim="sample").chunk({"sample": chunk_rows})
