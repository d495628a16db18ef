"""Validate: records become typed rows or quarantined rows, never silently dropped.

Takes the records of :mod:`pipeline.sources` (parse problems already marked) and adds, in this
order, the first reason that applies: ``missing_value`` (the label is missing),
``label_not_allowed``, ``not_numeric`` (an int schema's value is not integral), ``out_of_range``.
Missing values are left as NaN for :mod:`pipeline.clean.missing` to drop or impute.
"""
from __future__ import annotations

from dataclasses import dataclass

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import SchemaConfig
from pipeline.partitions import per_partition
from pipeline.sources.base import value_names

REASONS = ("malformed", "wrong_field_count", "not_numeric", "missing_value", "label_not_allowed",
           "out_of_range", "outlier", "empty_text")


def as_quarantine(rows: dd.DataFrame, reason: str) -> dd.DataFrame:
    """``rows`` as quarantine records (source, line, raw, reason) with one ``reason``."""
    return rows[["source", "line", "raw"]].assign(reason=reason).astype({"reason": "string"})


def quarantine_records(frame: pd.DataFrame, reason: str) -> pd.DataFrame:
    """The pandas form of :func:`as_quarantine`, for one partition."""
    return frame[["source", "line", "raw"]].assign(reason=pd.array([reason] * len(frame), dtype="string"))


@dataclass(frozen=True)
class ValidateResult:
    """Lazy outputs: ``rows`` has source, line, raw, label (int16) and ``p0..pN`` (float64, NaN = missing)."""

    rows: dd.DataFrame
    quarantine: dd.DataFrame


def label_codes(schema: SchemaConfig) -> dict[str, int]:
    """Stored label per allowed label text: the number itself for int labels, else its position."""
    if all(isinstance(v, int) for v in schema.labels):
        return {str(v): int(v) for v in schema.labels}
    return {str(v): i for i, v in enumerate(schema.labels)}


def _label_reasons(frame: pd.DataFrame, schema: SchemaConfig) -> tuple[np.ndarray, pd.Series]:
    """(reasons with ``missing_value``/``label_not_allowed`` added, label codes with -1 where bad)."""
    reason = frame["reason"].to_numpy(dtype=object, na_value=None).copy()
    free = pd.isna(reason)
    label = frame["label"]
    codes = label.map(label_codes(schema))
    missing_label = label.isna().to_numpy()
    reason[free & missing_label] = "missing_value"
    bad_label = codes.isna().to_numpy() & ~missing_label
    reason[free & ~missing_label & bad_label] = "label_not_allowed"
    return reason, codes.fillna(-1).astype("int16")


def _classify(frame: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    reason, codes = _label_reasons(frame, schema)
    values = frame[value_names(schema.n_fields - 1)].to_numpy()
    free = pd.isna(reason)
    if schema.dtype == "int":
        fractional = np.any(np.isfinite(values) & (values != np.round(values)), axis=1)
        reason[free & fractional] = "not_numeric"
        free = pd.isna(reason)
    with np.errstate(invalid="ignore"):
        outside = np.any((values < schema.value_min) | (values > schema.value_max) | np.isinf(values), axis=1)
    reason[free & outside] = "out_of_range"
    out = frame.assign(reason=pd.array(reason, dtype="string"), label=codes)
    return out.rename(columns=dict(zip(value_names(schema.n_fields - 1), value_columns(schema))))


def value_columns(schema: SchemaConfig) -> list[str]:
    """Value columns of validated rows: ``p0..pN`` (float64 until :mod:`pipeline.clean.coerce`)."""
    return [f"p{i}" for i in range(schema.n_fields - 1)]


def _classified_meta(meta: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    meta = meta.assign(label=pd.Series(dtype="int16"))
    return meta.rename(columns=dict(zip(value_names(schema.n_fields - 1), value_columns(schema))))


QUARANTINE_COLUMNS = ["source", "line", "raw", "reason"]


def _split(frame: pd.DataFrame, classify, schema: SchemaConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows, quarantined rows) of one records partition, from one ``classify`` call."""
    classified = classify(frame, schema)
    bad = classified["reason"].notna().to_numpy(dtype=bool)
    return classified[~bad].drop(columns=["reason"]), classified.loc[bad, QUARANTINE_COLUMNS]


def _validated(records: dd.DataFrame, classify, meta: pd.DataFrame, schema: SchemaConfig, name: str) -> ValidateResult:
    rows, quarantine = per_partition(records, _split, (meta.drop(columns=["reason"]), meta[QUARANTINE_COLUMNS]),
                                     classify, schema, name=name)
    return ValidateResult(rows=rows, quarantine=quarantine)


def _classify_labels(frame: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    reason, codes = _label_reasons(frame, schema)
    return frame.assign(reason=pd.array(reason, dtype="string"), label=codes)


def validate_labels(records: dd.DataFrame, schema: SchemaConfig) -> ValidateResult:
    """Labelled records without value fields (text): only the label is judged; lazy.

    ``rows`` keep every column but ``reason``, with ``label`` as its int16 code.
    """
    meta = records._meta.assign(label=pd.Series(dtype="int16"))
    return _validated(records, _classify_labels, meta, schema, "validate-labels")


UNLABELLED = -1   # the label code of every record of an unlabelled text source


def _classify_unlabelled(frame: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    reason = frame["reason"] if "reason" in frame.columns else pd.array([None] * len(frame), dtype="string")
    out = frame.drop(columns=[c for c in ("reason", "label") if c in frame.columns])
    return out.assign(reason=pd.array(reason, dtype="string"), label=np.full(len(frame), UNLABELLED, dtype="int16"))


def validate_unlabelled(records: dd.DataFrame, schema: SchemaConfig) -> ValidateResult:
    """Unlabelled text records: those a source marked (``malformed``...) are quarantined, the others
    get the label code ``UNLABELLED``; lazy."""
    meta = _classify_unlabelled(records._meta, schema)
    return _validated(records, _classify_unlabelled, meta, schema, "validate-unlabelled")


def validate(records: dd.DataFrame, schema: SchemaConfig) -> ValidateResult:
    """Split records into typed rows and quarantined rows (lazy; each partition is classified once)."""
    return _validated(records, _classify, _classified_meta(records._meta, schema), schema, "validate")
