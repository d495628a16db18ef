"""Exact duplicates across all partitions: the first (by source, line) of each identical record stays.

Each row's label and values are hashed (64-bit, per partition); a single small task over the
(hash, source, line) keys of all rows picks the rows to drop, and every partition then drops its
own (one task per partition gives both its kept rows and its count). Two different records share
a 64-bit hash with probability about n^2 / 2^65 (1e-8 at a million rows); that is the only way a
non-duplicate could be dropped.
"""
from __future__ import annotations

from functools import partial

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.partitions import gather, per_partition, total


def _hash(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    h = pd.util.hash_pandas_object(frame[columns], index=False)
    return pd.Series(h.to_numpy(), index=frame.index, name="h")


def _to_drop(keys: pd.DataFrame) -> pd.MultiIndex:
    keys = keys.sort_values(["h", "source", "line"], kind="stable")
    dup = keys.duplicated(subset="h", keep="first").to_numpy()
    return pd.MultiIndex.from_arrays([keys["source"].to_numpy()[dup], keys["line"].to_numpy()[dup]])


def _flags(frame: pd.DataFrame, drop: pd.MultiIndex) -> pd.Series:
    if len(drop) == 0:
        return pd.Series(np.zeros(len(frame), dtype=bool), index=frame.index)
    mine = pd.MultiIndex.from_arrays([frame["source"].to_numpy(), frame["line"].to_numpy()])
    return pd.Series(mine.isin(drop), index=frame.index)


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """(source, line, h) of one partition: all that the global pick of duplicates needs."""
    return frame[["source", "line"]].assign(h=_hash(frame, columns))


def _drop_table(keys: pd.DataFrame) -> pd.DataFrame:
    """(source, line) of every row to drop, from the keys of all partitions."""
    drop = _to_drop(keys)
    return pd.DataFrame({"source": pd.array(drop.get_level_values(0), dtype="string"),
                         "line": np.asarray(drop.get_level_values(1), dtype="int64")})


def without_duplicates(frame: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(the partition without its duplicates, how many it dropped)."""
    drop = pd.MultiIndex.from_arrays([table["source"].to_numpy(dtype=object), table["line"].to_numpy()])
    flags = _flags(frame, drop).to_numpy(dtype=bool)
    return frame[~flags], int(flags.sum())


def duplicate_table(rows: dd.DataFrame, columns: list[str]) -> dd.DataFrame:
    """A one-partition lazy frame: (source, line) of every exact duplicate of ``label`` + ``columns``."""
    meta = _drop_table(rows._meta[["source", "line"]].assign(h=pd.Series(dtype="uint64")))
    return gather(rows, partial(_keys, columns=["label", *columns]), _drop_table, meta, name="clean-dup-keys")


def apply_duplicates(rows: dd.DataFrame, table: dd.DataFrame):
    """(rows without the ones :func:`duplicate_table` names, lazy count dropped)."""
    kept, dropped = per_partition(rows, without_duplicates, (rows._meta, None), table, name="clean-dup-flags")
    return kept, total(dropped)


def drop_duplicates(rows: dd.DataFrame, columns: list[str]):
    """(rows without exact duplicates of ``label`` + ``columns``, lazy count dropped)."""
    return apply_duplicates(rows, duplicate_table(rows, columns))
