"""Partition-wise work with several lazy outputs, computed once (used by validate and clean).

``per_partition`` runs a function ONCE per partition and hands out each of its results (rows,
quarantined rows, counts) as its own lazy output. Deriving several outputs from one Dask DataFrame
by separate filters instead lets dask-expr optimise and fuse each output apart, and the shared
work (validation, duplicate flags) then ran once per output. Everything stays one dask-expr graph
(no ``to_delayed``/``from_delayed`` round trips), so all outputs computed or persisted together
share each partition's task.
"""
from __future__ import annotations

from collections.abc import Callable

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask._collections import new_collection
from dask.dataframe.dask_expr._expr import MapPartitions

from pipeline import sizeof as _sizeof  # noqa: F401 - registers the fast sizeof of wide frames on workers

COUNT_META = pd.DataFrame({"n": pd.Series(dtype="int64")})


class _GivenMeta(MapPartitions):
    """``map_partitions`` whose meta is the one given, read without computing anything.

    Why: on Python 3.11 ``functools.cached_property`` holds one lock per class attribute while it
    computes. A LocalCluster's scheduler materialises a persisted graph in a thread of the client's
    process; it computes ``Concat._meta`` -> ``frame.ndim`` -> ``MapPartitions._meta``, while the
    client thread computing a new ``map_partitions`` meta holds the ``MapPartitions._meta`` lock
    and waits for ``ndim``'s: a deadlock (seen in ``prepare``, whose quarantine concatenates these
    outputs). A plain property takes no lock.
    """

    @property
    def _meta(self):
        return self.operand("meta")


def _map(frame: dd.DataFrame, func: Callable, *args, meta: pd.DataFrame, token: str) -> dd.DataFrame:
    """``frame.map_partitions(func, *args)`` with the given meta taken as is (see ``_GivenMeta``)."""
    mapped = frame.map_partitions(func, *args, meta=meta, enforce_metadata=False, token=token)
    return new_collection(_GivenMeta(*mapped.expr.operands))


def _pick(results: tuple, j: int):
    return results[j]


def _pick_count(results: tuple, j: int) -> pd.DataFrame:
    return pd.DataFrame({"n": np.asarray([results[j]], dtype="int64")})


def per_partition(frame: dd.DataFrame, func: Callable, metas: tuple, *args, name: str) -> tuple:
    """Apply ``func(partition, *args)`` once per partition; it returns a tuple with one entry per meta.

    Returns one lazy DataFrame per entry: the entry itself where its meta is a pandas frame, or a
    one-row ``n`` frame where the meta is ``None`` (a count; sum it with :func:`total`). Dask
    collections in ``args`` with one partition (reductions) are given whole to every partition.
    Task keys start with ``name``.
    """
    # The partitions of ``results`` hold tuples, not frames; only ``_pick`` reads them, so the meta
    # given for them is never used.
    results = _map(frame, func, *args, meta=frame._meta, token=name)
    return tuple(_map(results, _pick, j, meta=meta, token=f"{name}-{j}") if meta is not None else
                 _map(results, _pick_count, j, meta=COUNT_META, token=f"{name}-{j}")
                 for j, meta in enumerate(metas))


def total(counts: dd.DataFrame):
    """Lazy sum (a Dask scalar) of the per-partition counts of :func:`per_partition`."""
    return counts["n"].sum()


def gather(frame: dd.DataFrame, chunk: Callable, aggregate: Callable, meta: pd.DataFrame, name: str):
    """A one-partition lazy frame: ``aggregate`` of the concatenated ``chunk(partition)`` frames.

    Give it to :func:`per_partition` (or ``map_partitions``) as an argument: every partition then
    gets the whole result.
    """
    return frame.reduction(chunk, aggregate, meta=meta, token=name, split_every=False)


def value_block(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``frame[columns]`` as one 2-D array, without a copy when they are adjacent and in order."""
    idx = frame.columns.get_indexer(columns)
    if len(idx) and (idx >= 0).all() and (np.diff(idx) == 1).all():
        return frame.iloc[:, idx[0]:idx[-1] + 1].to_numpy()
    return frame[columns].to_numpy()
