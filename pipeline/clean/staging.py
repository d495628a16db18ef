"""Staging: validated rows written to disk once, read back by each whole-file pass of the clean stage.

Dropping exact duplicates and bounding outliers (and imputing a mean or median) need statistics of
the whole file before any partition can be finished. Computed in one graph from the parsed rows,
every partition's rows (float64 values and their raw lines, about 4x the CSV) wait in worker memory
until the statistics are known: memory grows with the input and workers spill past a few GB.
Staged, each partition is parsed and validated once, written here and released; every pass
(:func:`pipeline.clean.clean`) then reads the files again, one partition at a time, so worker
memory stays that of a few partitions whatever the input size.

A partition is two files named by a fresh id: ``<id>.npy``, the value block in the narrowest dtype
that holds every value exactly (:func:`exact_dtype`; uint8 for images), and ``<id>.arrow``, the
other columns (source, line, raw text, label) as lz4-compressed Arrow. The read gives back the
frame that was written, values in their dtype again (float64 while cleaning), so every later step
sees exactly what it saw without staging. The folder must be one every worker can read and write
(the dataset root); whoever stages removes it when the rows it feeds are computed (``prepare``
after publishing). ``prepare`` also stages the split table (:attr:`Staged.rows`): the store and
the report read it back from disk, so no worker holds the whole table, whatever the input size.
"""
from __future__ import annotations

import errno
import os
import threading
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from pipeline.partitions import per_partition, value_block

#: ``np.load`` parses a file's header with ``ast.literal_eval``; on CPython 3.11 two threads compiling
#: at once can fail with "SystemError: AST constructor recursion depth mismatch" (cpython gh-106905),
#: seen here with two threads of one worker reading staged partitions. One load per process at a time.
_LOAD = threading.Lock()
RECEIPT_META = pd.DataFrame({"id": pd.Series(dtype="string"), "n": pd.Series(dtype="int64")})
#: tried in order; the first that holds a block exactly is the one stored
NARROW = tuple(np.dtype(t) for t in ("uint8", "int16", "int32", "float32"))


def exact_dtype(values: np.ndarray) -> np.dtype:
    """The narrowest dtype of :data:`NARROW` that holds every value of ``values`` exactly (else its own)."""
    if values.size == 0:
        return NARROW[0]
    has_nan = np.isnan(values).any() if values.dtype.kind == "f" else False
    for dtype in NARROW:
        if has_nan and dtype.kind != "f":
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            narrow = values.astype(dtype)
        if np.array_equal(narrow, values, equal_nan=has_nan):
            return dtype
    return values.dtype


def _write(frame: pd.DataFrame, folder: str, columns: list[str]) -> tuple[pd.DataFrame]:
    """Write one partition; its receipt (one row: file id, rows) is what the passes depend on."""
    ident = uuid.uuid4().hex   # a task run again (lost worker) writes new files; its receipt names them
    base = Path(folder) / ident
    values = value_block(frame, columns)
    try:
        np.save(base.with_suffix(".tmp.npy"), values.astype(exact_dtype(values), copy=False))
    except OSError as exc:   # numpy's short write ("N requested and M written") carries no errno: the disk is full
        if exc.errno is None and "requested and" in str(exc):
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({exc})", str(folder)) from None
        raise
    os.replace(base.with_suffix(".tmp.npy"), base.with_suffix(".npy"))   # atomic: never half a file
    head = pa.Table.from_pandas(frame.drop(columns=columns), preserve_index=True)
    feather.write_feather(head, base.with_suffix(".tmp.arrow"), compression="lz4")
    os.replace(base.with_suffix(".tmp.arrow"), base.with_suffix(".arrow"))
    return (pd.DataFrame({"id": pd.array([ident], dtype="string"), "n": np.asarray([len(frame)], dtype="int64")}),)


def _read(folder: str, order: list[str], columns: list[str], dtype: str, receipt: pd.DataFrame) -> pd.DataFrame:
    """The partition a receipt names, as it was written (values as ``dtype``)."""
    return _read_id(folder, order, columns, dtype, receipt["id"].iloc[0])


def _read_id(folder: str, order: list[str], columns: list[str], dtype: str, ident: str) -> pd.DataFrame:
    """The partition written as ``ident`` (see :func:`_read`); ``ident`` last, for ``from_map``."""
    base = Path(folder) / ident
    head = feather.read_table(base.with_suffix(".arrow"), memory_map=True).to_pandas()
    with _LOAD:
        values = np.load(base.with_suffix(".npy"))
    values = values.astype(dtype, copy=False)
    frame = pd.concat([head, pd.DataFrame(values, columns=columns, index=head.index)], axis=1)
    return frame if list(frame.columns) == order else frame[order]


@dataclass(frozen=True)
class Staged:
    """Rows staged in ``folder``: one receipt per partition, and :attr:`read` turning a receipt
    back into its rows inside the task of a pass (:func:`pipeline.clean.clean`), so a partition
    read is used at once by that pass's steps, never held as a task output of its own."""

    receipts: dd.DataFrame
    folder: str
    meta: pd.DataFrame
    columns: list

    @property
    def _spec(self) -> tuple:
        """(folder, column order, value columns, value dtype): what a read needs, plain values only."""
        return self.folder, list(self.meta.columns), list(self.columns), str(self.meta[self.columns[0]].dtype)

    @property
    def read(self) -> partial:
        """``read(receipt) -> rows``: plain values only, so it travels in a task without the graph."""
        return partial(_read, *self._spec)

    def rows(self, receipts: pd.DataFrame) -> dd.DataFrame:
        """The staged rows, read from disk by whoever computes them; ``receipts`` are :attr:`receipts`
        computed (one row per partition: the rows are written once and read as often as needed).

        The reads depend on no task: each is a data producer that Dask's scheduler queues (root-task
        queuing), handing a worker the next partition once its thread is free, so a partition's
        consumers (the store's features, augmentation and writes) run before the next is read.
        Read by a task per persisted receipt instead, all reads were ready at once and a 2 GB
        source's augmented blocks (3.0 GB per worker) waited for their writes."""
        # the spec bound positionally: a ``columns`` keyword would be taken for a column projection
        return dd.from_map(partial(_read_id, *self._spec), list(receipts["id"]), meta=self.meta,
                           label="staged-read", enforce_metadata=False)


def stage(rows: dd.DataFrame, folder: Path, columns: list[str], name: str = "clean-stage") -> Staged:
    """Write every partition of ``rows`` to ``folder`` (lazily: when a pass that reads it is computed);
    task keys start with ``name``, which names their stage on the dashboard (:mod:`pipeline.progress`)."""
    folder.mkdir(parents=True, exist_ok=True)
    receipts = per_partition(rows, _write, (RECEIPT_META,), str(folder), list(columns), name=name)[0]
    return Staged(receipts, str(folder), rows._meta, list(columns))
