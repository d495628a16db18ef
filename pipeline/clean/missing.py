"""Missing values: quarantine rows that have one (``missing_value``), or impute per column.

The statistics (mean or approximate median per column) are Dask reductions over all partitions,
computed once and broadcast to every partition.
"""
from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import MissingPolicy
from pipeline.partitions import per_partition, value_block
from pipeline.validate import quarantine_records


def missing_fill(frame: pd.DataFrame, columns: list[str], fill) -> pd.DataFrame:
    values = frame[columns]
    filled = values.fillna(fill if np.isscalar(fill) else pd.Series(np.asarray(fill), index=columns))
    return frame.assign(**{c: filled[c] for c in columns}) if values.isna().to_numpy().any() else frame


def missing_split(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows without a missing value, the others as quarantine records) of one partition."""
    missing = np.isnan(value_block(frame, columns)).any(axis=1)
    return frame[~missing], quarantine_records(frame[missing], "missing_value")


def missing_stats(rows: dd.DataFrame, columns: list[str], policy: MissingPolicy):
    """(fill values, lazy count of missing values) for imputing, or None when rows are dropped."""
    if policy.strategy == "drop":
        return None
    n_missing = rows[columns].isna().sum().sum()
    if policy.strategy == "constant":
        fill = policy.fill_value
    elif policy.strategy == "mean":
        fill = rows[columns].mean().fillna(policy.fill_value)
    else:
        fill = rows[columns].quantile(0.5).fillna(policy.fill_value)
    return fill, n_missing


def apply_missing(rows: dd.DataFrame, columns: list[str], policy: MissingPolicy, stats):
    """(rows without missing values, quarantined rows, lazy count of imputed values), given
    :func:`missing_stats` of the same rows."""
    if policy.strategy == "drop":   # one pass per partition gives both outputs
        metas = (rows._meta, quarantine_records(rows._meta, "missing_value"))
        kept, quarantine = per_partition(rows, missing_split, metas, columns, name="clean-missing")
        return kept, quarantine, 0
    fill, n_missing = stats
    # fill: a number, or a one-partition lazy Series given whole to every partition (in the same graph)
    filled = rows.map_partitions(missing_fill, columns, fill, meta=rows._meta, token="clean-impute")
    empty = rows._meta[["source", "line", "raw"]].assign(reason=pd.Series(dtype="string"))
    return filled, dd.from_pandas(empty, npartitions=1), n_missing


def handle_missing(rows: dd.DataFrame, columns: list[str], policy: MissingPolicy):
    """(rows without missing values, quarantined rows, lazy count of imputed values)."""
    return apply_missing(rows, columns, policy, missing_stats(rows, columns, policy))
