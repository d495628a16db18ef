"""Outliers by z-score or IQR, with bounds from Dask reductions; drop (``outlier``), clip or flag.

z-score: a value is an outlier when ``|x - mean| > z_threshold * std`` (columns with std 0 have no
outliers). IQR: outside ``[q1 - f * iqr, q3 + f * iqr]`` with approximate quartiles. A row is an
outlier when any of its values is.

The z-score statistics come from per-partition moments (count, sum, sum of squares per column),
one small task per partition: exact for integer data, whatever the partitioning. Then one task per
partition marks its rows and gives the kept rows, the quarantined ones and its counts together.
"""
from __future__ import annotations

from functools import partial

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import OutlierPolicy
from pipeline.partitions import gather, per_partition, total, value_block
from pipeline.validate import quarantine_records

BOUNDS_META = pd.DataFrame({"low": pd.Series(dtype="float64"), "high": pd.Series(dtype="float64")})


def _moments(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per column of one partition: rows, sum and sum of squares (float64: exact for integers)."""
    values = value_block(frame, columns).astype("float64", copy=False)
    return pd.DataFrame({"n": np.full(len(columns), float(len(values))), "s1": values.sum(axis=0),
                         "s2": np.einsum("ij,ij->j", values, values)}, index=columns)


def zscore_bounds(n: float, s1: np.ndarray, s2: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per column from the moments: mean -+ z * std (ddof 1); no bound where std is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):   # no rows: no bounds (NaN compares false)
        mean = s1 / n
        std = np.sqrt(np.clip((s2 - n * mean ** 2) / (n - 1), 0, None))
    spread = np.where(std > 0, std * z, np.inf)
    return mean - spread, mean + spread


def _zscore_table(moments: pd.DataFrame, columns: list[str], z: float) -> pd.DataFrame:
    """Bounds per column from the moments of all partitions (concatenated, in column order)."""
    n, s1, s2 = moments.to_numpy().reshape(-1, len(columns), 3).sum(axis=0).T
    low, high = zscore_bounds(n[0] if len(n) else 0.0, s1, s2, z)
    return pd.DataFrame({"low": low, "high": high}, index=columns)


def _iqr_table(q1: pd.Series, q3: pd.Series, factor: float) -> pd.DataFrame:
    iqr = q3 - q1
    return pd.DataFrame({"low": q1 - factor * iqr, "high": q3 + factor * iqr})


def outlier_bounds(rows: dd.DataFrame, columns: list[str], policy: OutlierPolicy) -> dd.DataFrame:
    """A one-partition lazy frame of ``low`` and ``high`` per column."""
    if policy.method == "zscore":
        return gather(rows, partial(_moments, columns=columns),
                      partial(_zscore_table, columns=columns, z=policy.z_threshold), BOUNDS_META,
                      name="clean-outliers-bounds")
    q1, q3 = rows[columns].quantile(0.25), rows[columns].quantile(0.75)
    return q1.map_partitions(_iqr_table, q3, policy.iqr_factor, meta=BOUNDS_META)


def _mark(frame: pd.DataFrame, columns: list[str], low, high, action: str) -> pd.DataFrame:
    low, high = np.asarray(low, dtype="float64"), np.asarray(high, dtype="float64")
    values = frame[columns].to_numpy()
    outside = (values < low) | (values > high)
    out = frame.assign(outlier=outside.any(axis=1), n_outlier_values=outside.sum(axis=1))
    if action == "clip" and outside.any():
        clipped = np.clip(values, low, high)
        out[columns] = clipped
    return out


def mark_outliers(frame: pd.DataFrame, columns: list[str], bounds: pd.DataFrame, action: str):
    """(kept rows, quarantined rows, outlier rows, outlier values) of one partition."""
    marked = _mark(frame, columns, bounds["low"].to_numpy(), bounds["high"].to_numpy(), action)
    outlier = marked["outlier"].to_numpy(dtype=bool)
    counts = int(outlier.sum()), int(marked.pop("n_outlier_values").sum())
    if action == "drop":
        return marked[~outlier].drop(columns=["outlier"]), quarantine_records(marked[outlier], "outlier"), *counts
    kept = marked if action == "flag" else marked.drop(columns=["outlier"])
    return kept, quarantine_records(marked.iloc[:0], "outlier"), *counts


def outlier_meta(meta: pd.DataFrame, action: str) -> pd.DataFrame:
    """The meta of :func:`mark_outliers`' kept rows (``flag`` adds the ``outlier`` column)."""
    return meta.assign(outlier=pd.Series(dtype=bool)) if action == "flag" else meta


def apply_outliers(rows: dd.DataFrame, columns: list[str], policy: OutlierPolicy, bounds: dd.DataFrame):
    """(rows, quarantined rows, lazy count of outlier rows, lazy count of outlier values), given
    :func:`outlier_bounds` of the same rows."""
    metas = (outlier_meta(rows._meta, policy.action), quarantine_records(rows._meta, "outlier"), None, None)
    kept, quarantine, n_rows, n_values = per_partition(rows, mark_outliers, metas, columns, bounds, policy.action,
                                                       name="clean-outliers")
    return kept, quarantine, total(n_rows), total(n_values)


def handle_outliers(rows: dd.DataFrame, columns: list[str], policy: OutlierPolicy):
    """(rows, quarantined rows, lazy count of outlier rows, lazy count of outlier values)."""
    return apply_outliers(rows, columns, policy, outlier_bounds(rows, columns, policy))
