"""Exact duplicates across all partitions: the first (by source, line) of each identical record stays.

Each row's label and values are hashed (64-bit, per partition); a single small task over the
(hash, source, line) keys of all rows picks the rows to drop, and every partition then drops its
own. Two different records share a 64-bit hash with probability about n^2 / 2^65 (1e-8 at a
million rows); that is the only way a non-duplicate could be dropped.
"""
from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed


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


def drop_duplicates(rows: dd.DataFrame, columns: list[str]):
    """(rows without exact duplicates of ``label`` + ``columns``, lazy count dropped)."""
    h = rows.map_partitions(_hash, ["label", *columns], meta=("h", "uint64"), token="clean-dup-hash")
    keys = rows[["source", "line"]].assign(h=h)
    drop = delayed(_to_drop, name="clean-dup-keys", pure=True)(keys)
    flags = rows.map_partitions(_flags, drop, meta=(None, "bool"), token="clean-dup-flags")
    return rows[~flags], flags.sum()
