"""Validate: raw records become typed rows or quarantined rows, never silently dropped.

Each raw line must hold ``schema.n_fields`` integer fields, its label in ``schema.labels`` and
every other value within ``[value_min, value_max]``. A failing line goes to the quarantine table
with the first reason that applies, in this order: ``wrong_field_count``, ``not_numeric``,
``label_not_allowed``, ``out_of_range``.
"""
from __future__ import annotations

from dataclasses import dataclass

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import SchemaConfig

QUARANTINE_META = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                                "raw": pd.Series(dtype="string"), "reason": pd.Series(dtype="string")})
REASONS = ("wrong_field_count", "not_numeric", "label_not_allowed", "out_of_range")


@dataclass(frozen=True)
class ValidateResult:
    """Lazy outputs: ``rows`` has source, line, label and ``p0..pN`` (uint8 or int32) columns."""

    rows: dd.DataFrame
    quarantine: dd.DataFrame


def value_columns(schema: SchemaConfig) -> list[str]:
    return [f"p{i}" for i in range(schema.n_fields - 1)]


def _value_dtype(schema: SchemaConfig) -> np.dtype:
    return np.dtype("uint8") if 0 <= schema.value_min and schema.value_max <= 255 else np.dtype("int32")


def _rows_meta(schema: SchemaConfig) -> pd.DataFrame:
    cols = {"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
            "label": pd.Series(dtype="int16")}
    vdt = _value_dtype(schema)
    cols.update({c: pd.Series(dtype=vdt) for c in value_columns(schema)})
    return pd.DataFrame(cols)


def _split_fields(raw: pd.Series, delimiter: str, n_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """(ok mask, fields as an (n_ok, n_fields) str array) for lines with the right field count."""
    parts = raw.fillna("").str.split(delimiter, regex=False)
    ok = (parts.str.len() == n_fields).to_numpy(dtype=bool)
    fields = np.array(parts[ok].tolist(), dtype=object).reshape(-1, n_fields)
    return ok, fields


def _to_int(row: np.ndarray) -> np.ndarray | None:
    try:
        return row.astype("int64")
    except (ValueError, OverflowError):
        return None


def _parse_ints(fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(numeric mask per row, int64 values); a row with any non-integer field is not numeric."""
    values = _to_int(fields)
    if values is not None:  # the common case: the whole block parses at once
        return np.ones(len(fields), dtype=bool), values
    rows = [_to_int(r) for r in fields]
    numeric = np.array([r is not None for r in rows], dtype=bool)
    values = np.zeros(fields.shape, dtype="int64")
    for i in np.flatnonzero(numeric):
        values[i] = rows[i]
    return numeric, values


def _classify(frame: pd.DataFrame, schema: SchemaConfig, delimiter: str) -> pd.DataFrame:
    """The records with a ``reason`` (``<NA>`` where valid), the label and the parsed values."""
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    ok_count, fields = _split_fields(frame["raw"], delimiter, schema.n_fields)
    reason[~ok_count] = "wrong_field_count"
    counted = np.flatnonzero(ok_count)
    numeric, values = _parse_ints(fields)
    reason[counted[~numeric]] = "not_numeric"
    label_pos = schema.label_column % schema.n_fields
    labels, pixels = values[:, label_pos], np.delete(values, label_pos, axis=1)
    bad_label = numeric & ~np.isin(labels, schema.labels)
    reason[counted[bad_label]] = "label_not_allowed"
    out_of_range = ((pixels < schema.value_min) | (pixels > schema.value_max)).any(axis=1)
    bad_range = numeric & ~bad_label & out_of_range
    reason[counted[bad_range]] = "out_of_range"
    good = counted[numeric & ~bad_label & ~bad_range]
    label_out = np.zeros(n, dtype="int16")
    label_out[good] = labels[numeric & ~bad_label & ~bad_range]
    body = np.zeros((n, schema.n_fields - 1), dtype=_value_dtype(schema))
    body[good] = pixels[numeric & ~bad_label & ~bad_range]
    head = pd.DataFrame({"source": frame["source"].to_numpy(), "line": frame["line"].to_numpy(),
                         "raw": frame["raw"].to_numpy(), "reason": pd.array(reason, dtype="string"),
                         "label": label_out})
    head = head.astype({"source": "string", "raw": "string"})
    return pd.concat([head, pd.DataFrame(body, columns=value_columns(schema))], axis=1)


def _classified_meta(schema: SchemaConfig) -> pd.DataFrame:
    meta = _rows_meta(schema)
    meta.insert(2, "raw", pd.Series(dtype="string"))
    meta.insert(3, "reason", pd.Series(dtype="string"))
    return meta


def validate(records: dd.DataFrame, schema: SchemaConfig, delimiter: str = ",") -> ValidateResult:
    """Split raw records into typed rows and quarantined rows (lazy; each line is parsed once)."""
    classified = records.map_partitions(_classify, schema, delimiter, meta=_classified_meta(schema),
                                        token="validate", enforce_metadata=False)
    valid = classified["reason"].isna()
    rows = classified[valid].drop(columns=["raw", "reason"])
    quarantine = classified[~valid][["source", "line", "raw", "reason"]]
    return ValidateResult(rows=rows, quarantine=quarantine)
