"""Clean: validated rows -> missing values -> exact duplicates -> outliers -> typed values.

Labelled text rows take their own chain (:func:`clean_labelled_text`): normalise and mask the
text, quarantine empty ones, then drop exact duplicates (same label and cleaned text).
Each step is a lazy function over Dask collections; :func:`clean` chains them as configured. Rows a
step rejects go to the quarantine with their reason; duplicates are only counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import dask.dataframe as dd

from pipeline.clean.coerce import coerce, value_dtype
from pipeline.clean.duplicates import drop_duplicates
from pipeline.clean.missing import handle_missing
from pipeline.clean.outliers import handle_outliers
from pipeline.clean.text import clean_text
from pipeline.config import CleanConfig, SchemaConfig
from pipeline.validate import value_columns


@dataclass(frozen=True)
class CleanResult:
    """Lazy outputs: stored rows (``p0..pN``), quarantined rows, and lazy counts by name."""

    rows: dd.DataFrame
    quarantine: dd.DataFrame
    counts: dict = field(default_factory=dict)


def clean(rows: dd.DataFrame, cfg: CleanConfig, schema: SchemaConfig) -> CleanResult:
    """Apply the configured cleaning steps to validated rows (see :mod:`pipeline.validate`)."""
    columns = value_columns(schema)
    rows, q_missing, imputed = handle_missing(rows, columns, cfg.missing)
    quarantined = [q_missing]
    counts = {"values_imputed": imputed, "duplicates_dropped": 0}
    if cfg.duplicates == "drop":
        rows, counts["duplicates_dropped"] = drop_duplicates(rows, columns)
    if cfg.outliers.method != "none":
        rows, q_out, n_rows, n_values = handle_outliers(rows, columns, cfg.outliers)
        quarantined.append(q_out)
        counts.update({f"outlier_rows_{cfg.outliers.action}": n_rows, "outlier_values": n_values})
    return CleanResult(coerce(rows, columns, schema), dd.concat(quarantined) if len(quarantined) > 1
                       else quarantined[0], counts)


def clean_labelled_text(rows: dd.DataFrame, cfg: CleanConfig) -> CleanResult:
    """Validated labelled text rows (``pipeline.validate.validate_labels``) -> cleaned rows; ``raw`` dropped.

    Counts: ``masked_<kind>`` per personal-data kind, ``duplicates_dropped``.
    """
    done = clean_text(rows, cfg.text)
    counts = {f"masked_{kind}": n for kind, n in done.masked.items()}
    counts["duplicates_dropped"] = 0
    kept = done.records
    if cfg.duplicates == "drop":
        kept, counts["duplicates_dropped"] = drop_duplicates(kept, ["text"])
    return CleanResult(kept.drop(columns=["raw"]), done.quarantine, counts)


__all__ = ["CleanResult", "clean", "clean_labelled_text", "clean_text", "coerce", "drop_duplicates", "handle_missing",
           "handle_outliers", "value_dtype"]
