"""The record table every source produces, and the registry of sources.

A source turns ``source`` config into a lazy Dask DataFrame of *records* with these columns:

    source  string   file (or table) the record came from
    line    int64    1-based line or row number within it
    raw     string   the record as read (a text line, a JSON object, a file path), kept for quarantine
    reason  string   <NA>, or why the record is already unusable (``wrong_field_count``, ``not_numeric``,
                     ``malformed``)
    label   string   the label field as text; <NA> when missing
    v0..vN  float64  the value fields in schema order, NaN where missing

Sources parse; :mod:`pipeline.validate` judges. Nothing is dropped here: every line read is a row.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError

HEAD = ("source", "line", "raw", "reason", "label")


def value_names(n_values: int) -> list[str]:
    return [f"v{i}" for i in range(n_values)]


def records_meta(n_values: int) -> pd.DataFrame:
    cols = {"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
            "raw": pd.Series(dtype="string"), "reason": pd.Series(dtype="string"),
            "label": pd.Series(dtype="string")}
    cols.update({v: pd.Series(dtype="float64") for v in value_names(n_values)})
    return pd.DataFrame(cols)


def make_records(source: str | np.ndarray, line: np.ndarray, raw, reason, label,
                 values: np.ndarray) -> pd.DataFrame:
    """Assemble a records partition; ``values`` is an (n, n_values) float64 array."""
    n = len(line)
    head = pd.DataFrame({
        "source": pd.array(np.broadcast_to(np.asarray(source, dtype=object), (n,)), dtype="string"),
        "line": np.asarray(line, dtype="int64"),
        "raw": pd.array(raw, dtype="string"),
        "reason": pd.array(reason if reason is not None else [None] * n, dtype="string"),
        "label": pd.array(label, dtype="string"),
    })
    body = pd.DataFrame(np.asarray(values, dtype="float64").reshape(n, -1),
                        columns=value_names(values.shape[1] if values.ndim == 2 else 0))
    return pd.concat([head, body], axis=1)


def label_text(values) -> np.ndarray:
    """Labels as text: integral numbers without a fraction (7.0 -> '7'), missing as None."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out[i] = None
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out[i] = str(int(v))
        else:
            text = str(v).strip()
            out[i] = text if text else None
    return out


@dataclass(frozen=True)
class Ingested:
    """A source, read lazily: the records and a provenance entry per input (name, bytes, sha256)."""

    records: dd.DataFrame
    inputs: list[dict]


Reader = Callable[[SourceConfig, SchemaConfig], Ingested]
_REGISTRY: dict[str, Reader] = {}


def register(kind: str) -> Callable[[Reader], Reader]:
    """Decorator: ``@register("csv")`` makes a reader available as ``source.kind: csv``."""
    def add(reader: Reader) -> Reader:
        _REGISTRY[kind] = reader
        return reader
    return add


def kinds() -> list[str]:
    return sorted(_REGISTRY)


def read(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    """Read the configured source lazily (metadata such as file lists and headers is read now)."""
    try:
        reader = _REGISTRY[cfg.kind]
    except KeyError:
        raise UserError(f"source.kind: unknown source {cfg.kind!r}; choose one of {kinds()}") from None
    return reader(cfg, schema)
