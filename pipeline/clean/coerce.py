"""Type coercion: value columns ``p0..pN`` (float64) take the schema's stored dtype; ``raw`` is dropped.

int schemas round (imputed means, clipped bounds) and store uint8 when the range fits, else int32;
float schemas store float32.
"""
from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline import sizeof as _sizeof  # noqa: F401 - registers the fast sizeof of wide frames on workers
from pipeline.config import SchemaConfig


def value_dtype(schema: SchemaConfig) -> np.dtype:
    if schema.dtype == "float":
        return np.dtype("float32")
    return np.dtype("uint8") if 0 <= schema.value_min and schema.value_max <= 255 else np.dtype("int32")


def _cast(frame: pd.DataFrame, columns: list[str], dtype: np.dtype) -> pd.DataFrame:
    values = frame[columns].to_numpy()
    if dtype.kind in "iu":
        values = np.rint(values)
    body = pd.DataFrame(values.astype(dtype), columns=columns, index=frame.index)
    head = frame.drop(columns=columns + ["raw"])
    return pd.concat([head, body], axis=1)


def coerce(rows: dd.DataFrame, columns: list[str], schema: SchemaConfig) -> dd.DataFrame:
    dtype = value_dtype(schema)
    meta = _cast(rows._meta, columns, dtype)
    return rows.map_partitions(_cast, columns, dtype, meta=meta, token="clean-coerce")
