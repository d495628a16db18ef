"""Augment: extra copies of the train split, reproducible whatever the number of workers.

The train range is cut into fixed blocks of ``chunk_rows`` samples (the cut depends only on the
config), and block ``k`` is augmented with a generator seeded by ``(seed, k)``. Each output block
holds the block's originals followed by its copies, so originals and copies stay side by side
and a contiguous shard of the train range holds both. The configured ops (``augment.ops``) all
work on one modality, and change the dataset variable of that modality (``VARIABLES``).
"""
from __future__ import annotations

import dataclasses
import itertools

import dask.array as da
import numpy as np
import xarray as xr

from pipeline.augment.registry import Op, SampleOp, build_all
from pipeline.config import AugmentConfig
from pipeline.errors import UserError

VARIABLES = {"image": "image", "text": "tokens", "tabular": "features"}


def apply_ops(block: np.ndarray, ops: list[Op], rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of ``block``: runs of sample ops go sample by sample, block ops whole."""
    out = block
    for per_sample, run in itertools.groupby(ops, key=lambda op: isinstance(op, SampleOp)):
        run = list(run)
        if per_sample:
            out = np.stack([_chain(sample, run, rng) for sample in out]) if len(out) else out
        else:
            for op in run:
                out = op.apply_block(out, rng)
    return out


def _chain(sample: np.ndarray, ops: list[SampleOp], rng: np.random.Generator) -> np.ndarray:
    for op in ops:
        sample = op(sample, rng)
    return sample


def _augment_block(block: np.ndarray, ops: list[Op], copies: int, seed: int, block_id=None) -> np.ndarray:
    rng = np.random.default_rng([seed, block_id[0]])
    return np.concatenate([block, *(apply_ops(block, ops, rng).astype(block.dtype) for _ in range(copies))])


def _repeat_block(block: np.ndarray, times: int) -> np.ndarray:
    return np.concatenate([block] * times, axis=0)


def _flag_block(block: np.ndarray, copies: int) -> np.ndarray:
    return np.concatenate([np.zeros(len(block), bool)] + [np.ones(len(block), bool)] * copies)


def _bind(ops: list[Op], var: xr.DataArray) -> list[Op]:
    """Ops given what they need from the variable (the vocabulary of token ids)."""
    vocab = var.attrs.get("vocabulary")
    return [dataclasses.replace(op, vocabulary=list(vocab)) if vocab is not None and hasattr(op, "vocabulary")
            else op for op in ops]


def _target(ds: xr.Dataset, ops: list[Op]) -> str | None:
    if not ops:
        return None
    name = VARIABLES[ops[0].modality]
    if name not in ds.data_vars:
        raise UserError(f"augment.ops: {ops[0].name!r} works on {ops[0].modality} data (variable {name!r}) "
                        f"but the dataset holds {', '.join(map(str, ds.data_vars))}; list ops for its modality")
    return name


def augment_train(ds: xr.Dataset, n_train: int, cfg: AugmentConfig, seed: int,
                  chunk_rows: int) -> xr.Dataset:
    """``ds`` with ``cfg.copies`` augmented copies of its first ``n_train`` samples; lazy.

    Task keys start with ``augment-``: ``augment-<variable>`` for the changed variable,
    ``augment-flag`` for the ``augmented`` flag and ``augment-repeat-<name>`` for the others.
    """
    if cfg.copies == 0 or n_train == 0:
        return ds.chunk({"sample": chunk_rows})
    ops = build_all(cfg.ops)
    target = _target(ds, ops)
    times = 1 + cfg.copies
    train = ds.isel(sample=slice(0, n_train)).chunk({"sample": chunk_rows})
    out_rows = tuple(c * times for c in train.chunks["sample"])
    grown = {}
    for name, var in train.data_vars.items():
        arr = var.data
        chunks = (out_rows,) + arr.chunks[1:]
        if name == target:
            data = da.map_blocks(_augment_block, arr, _bind(ops, var), cfg.copies, seed, chunks=chunks,
                                 dtype=arr.dtype, token=f"augment-{name}")
        elif name == "augmented":
            data = da.map_blocks(_flag_block, arr, cfg.copies, chunks=chunks, dtype=bool, token="augment-flag")
        else:
            data = da.map_blocks(_repeat_block, arr, times, chunks=chunks, dtype=arr.dtype,
                                 token=f"augment-repeat-{name}")
        grown[name] = (var.dims, data, var.attrs)
    train = xr.Dataset(grown, attrs=ds.attrs)
    rest = ds.isel(sample=slice(n_train, None))
    return xr.concat([train, rest], dim="sample").chunk({"sample": chunk_rows})
