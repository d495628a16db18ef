"""Partition-wise work with several lazy outputs, computed once (used by validate and clean).

``per_partition`` runs a function ONCE per partition and hands out each of its results (rows,
quarantined rows, counts) as its own lazy output. Deriving several outputs from one Dask DataFrame
by separate filters instead lets dask-expr optimise and fuse each output apart, and the shared
work (validation, duplicate flags) then ran once per output. Everything stays one dask-expr graph
(no ``to_delayed``/``from_delayed`` round trips), so all outputs computed or persisted together
share each partition's task.

The Python 3.11 meta lock, and the two things that keep it from deadlocking ``prepare``
(:class:`_GivenMeta` and :func:`wait_persisted`, both here so they change together):
on Python 3.11 ``functools.cached_property`` holds one lock per class attribute while it computes
(3.12 dropped the lock). A LocalCluster's scheduler materialises a persisted graph in a thread of
the client's process; it computes ``Concat._meta`` -> ``frame.ndim`` -> ``MapPartitions._meta``,
while the client thread computing a new ``map_partitions`` meta holds the ``MapPartitions._meta``
lock and waits for ``ndim``'s: a deadlock (seen in ``prepare``, whose quarantine concatenates these
outputs). So (1) our ``map_partitions`` read the meta given to them through a plain property,
which takes no lock: a subclass of dask-expr's private ``MapPartitions``, used only where
``cached_property`` locks (Python < 3.12; the public ``map_partitions`` elsewhere), and checked to
be the class it subclasses, so a Dask that changes it fails here, loudly, not in a hang; and (2)
``prepare`` builds no new expression until its persist is done (:func:`wait_persisted`).
"""
from __future__ import annotations

import sys
from collections.abc import Callable

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import wait

from pipeline import sizeof as _sizeof  # noqa: F401 - registers the fast sizeof of wide frames on workers

COUNT_META = pd.DataFrame({"n": pd.Series(dtype="int64")})

#: cached_property locks per class attribute before Python 3.12: only then is the private path taken.
META_LOCKS = sys.version_info < (3, 12)
#: dask-expr is inside dask (``dask.dataframe.dask_expr``) since 2025.1; checked with 2026.8.0.
DASK_EXPR_SINCE = (2025, 1)


def _dask_version() -> tuple[int, int]:
    return tuple(int(part) for part in dask.__version__.split(".")[:2])


def _private_path():
    """(``MapPartitions`` subclass with a lock-free ``_meta``, dask's ``new_collection``), or
    ``(None, None)`` where the public ``map_partitions`` takes no lock. Raises ``ImportError`` on a
    Dask whose private class is not the one this was written against."""
    if not META_LOCKS:
        return None, None
    if _dask_version() < DASK_EXPR_SINCE:
        raise ImportError(f"dcpipe needs dask >= {'.'.join(map(str, DASK_EXPR_SINCE))} (dask-expr inside dask); "
                          f"found {dask.__version__}")
    from dask._collections import new_collection
    from dask.dataframe.dask_expr._expr import MapPartitions

    if "meta" not in getattr(MapPartitions, "_parameters", ()) or not hasattr(MapPartitions, "operand"):
        raise ImportError(f"dask {dask.__version__}: dask.dataframe.dask_expr._expr.MapPartitions has no 'meta' "
                          "operand; pipeline/partitions.py must be updated for this Dask (see its docstring)")

    class _GivenMeta(MapPartitions):
        """``map_partitions`` whose meta is the one given, read without computing anything or
        taking ``cached_property``'s class-wide lock."""

        @property
        def _meta(self):
            return self.operand("meta")

    return _GivenMeta, new_collection


_GivenMeta, _new_collection = _private_path()


def _given_meta(mapped: dd.DataFrame) -> dd.DataFrame:
    """``mapped`` (a ``map_partitions`` result) re-made as :class:`_GivenMeta` where meta locks exist."""
    if _GivenMeta is None:
        return mapped
    base = _GivenMeta.__mro__[1]
    if type(mapped.expr) is not base:   # not an assert: it must hold under ``python -O`` too
        raise RuntimeError(f"dask {dask.__version__}: map_partitions made a {type(mapped.expr).__name__}, "
                           f"not {base.__name__}; pipeline/partitions.py must be updated for this Dask")
    return _new_collection(_GivenMeta(*mapped.expr.operands))


def wait_persisted(persisted: list) -> list:
    """Block until every collection of ``client.persist(...)`` is in memory, and return them.

    Build no new expression before: dask-expr's per-class meta locks can deadlock against the
    scheduler materialising the persisted graph in this process (see the module docstring).
    """
    wait(persisted)
    return persisted


def _map(frame: dd.DataFrame, func: Callable, *args, meta: pd.DataFrame, token: str) -> dd.DataFrame:
    """``frame.map_partitions(func, *args)`` with the given meta taken as is (see ``_GivenMeta``)."""
    return _given_meta(frame.map_partitions(func, *args, meta=meta, enforce_metadata=False, token=token))


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
