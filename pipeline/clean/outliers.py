"""Outliers by z-score or IQR, with bounds from Dask reductions; drop (``outlier``), clip or flag.

z-score: a value is an outlier when ``|x - mean| > z_threshold * std`` (columns with std 0 have no
outliers). IQR: outside ``[q1 - f * iqr, q3 + f * iqr]`` with approximate quartiles. A row is an
outlier when any of its values is.
"""
from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.clean._lazy import broadcast
from pipeline.config import OutlierPolicy
from pipeline.validate import as_quarantine


def _bounds(rows: dd.DataFrame, columns: list[str], policy: OutlierPolicy):
    if policy.method == "zscore":
        mean, std = rows[columns].mean(), rows[columns].std()
        spread = (std * policy.z_threshold).where(std > 0, np.inf)
        return mean - spread, mean + spread
    q1, q3 = rows[columns].quantile(0.25), rows[columns].quantile(0.75)
    iqr = q3 - q1
    return q1 - policy.iqr_factor * iqr, q3 + policy.iqr_factor * iqr


def _mark(frame: pd.DataFrame, columns: list[str], low, high, action: str) -> pd.DataFrame:
    low, high = np.asarray(low, dtype="float64"), np.asarray(high, dtype="float64")
    values = frame[columns].to_numpy()
    outside = (values < low) | (values > high)
    out = frame.assign(outlier=outside.any(axis=1), n_outlier_values=outside.sum(axis=1))
    if action == "clip" and outside.any():
        clipped = np.clip(values, low, high)
        out[columns] = clipped
    return out


def handle_outliers(rows: dd.DataFrame, columns: list[str], policy: OutlierPolicy):
    """(rows, quarantined rows, lazy count of outlier rows, lazy count of outlier values)."""
    low, high = _bounds(rows, columns, policy)
    meta = rows._meta.assign(outlier=pd.Series(dtype=bool), n_outlier_values=pd.Series(dtype="int64"))
    marked = rows.map_partitions(_mark, columns, broadcast(low), broadcast(high), policy.action, meta=meta,
                                 token="clean-outliers")
    n_rows, n_values = marked["outlier"].sum(), marked["n_outlier_values"].sum()
    marked = marked.drop(columns=["n_outlier_values"])
    if policy.action == "drop":
        quarantine = as_quarantine(marked[marked["outlier"]], "outlier")
        return marked[~marked["outlier"]].drop(columns=["outlier"]), quarantine, n_rows, n_values
    empty = rows._meta[["source", "line", "raw"]].assign(reason=pd.Series(dtype="string"))
    kept = marked if policy.action == "flag" else marked.drop(columns=["outlier"])
    return kept, dd.from_pandas(empty, npartitions=1), n_rows, n_values
