"""Clean: validated rows -> missing values -> exact duplicates -> outliers -> typed values.

Text rows, labelled or not, take their own chain (:func:`clean_labelled_text`): the quality
filters when configured (:mod:`pipeline.clean.quality`), normalise and mask the text, quarantine
empty ones, drop exact duplicates (same label and cleaned text), then quarantine near-duplicates
when configured (:mod:`pipeline.clean.near_duplicates`).
Each step is a lazy function over Dask collections; :func:`clean` chains them as configured. Rows a
step rejects go to the quarantine with their reason; duplicates are only counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import dask.dataframe as dd

from pipeline.clean.coerce import coerce, value_dtype
from pipeline.clean.duplicates import drop_duplicates
from pipeline.clean.missing import handle_missing
from pipeline.clean.near_duplicates import drop_near_duplicates
from pipeline.clean.outliers import handle_outliers
from pipeline.clean.quality import filter_quality
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


def with_duplicate_of(quarantine: dd.DataFrame) -> dd.DataFrame:
    """Quarantine records with an empty ``duplicate_of`` column (the near-duplicates' kept record)."""
    return quarantine.assign(duplicate_of=None).astype({"duplicate_of": "string"})


def clean_labelled_text(rows: dd.DataFrame, cfg: CleanConfig) -> CleanResult:
    """Validated text rows (``pipeline.validate.validate_labels``; unlabelled ones have label -1)
    -> cleaned rows; ``raw`` dropped. Near-duplicates in the quarantine carry ``duplicate_of``.

    Counts: ``masked_<kind>`` per personal-data kind, ``duplicates_dropped``, and with near-duplicate
    detection ``near_duplicate_clusters``.
    """
    quarantined = []
    if cfg.quality is not None:
        rows, q_quality = filter_quality(rows, cfg.quality)
        quarantined.append(q_quality)
    done = clean_text(rows, cfg.text)
    quarantined.append(done.quarantine)
    counts = {f"masked_{kind}": n for kind, n in done.masked.items()}
    counts["duplicates_dropped"] = 0
    kept = done.records
    if cfg.duplicates == "drop":
        kept, counts["duplicates_dropped"] = drop_duplicates(kept, ["text"])
    if cfg.near_duplicates is not None:
        kept, q_near, counts["near_duplicate_clusters"] = drop_near_duplicates(kept, cfg.near_duplicates)
        quarantined = [with_duplicate_of(q) for q in quarantined] + [q_near]
    quarantine = dd.concat(quarantined) if len(quarantined) > 1 else quarantined[0]
    return CleanResult(kept.drop(columns=["raw"]), quarantine, counts)


__all__ = ["CleanResult", "clean", "clean_labelled_text", "drop_near_duplicates", "filter_quality",
           "with_duplicate_of", "clean_text", "coerce", "drop_duplicates", "handle_missing",
           "handle_outliers", "value_dtype"]
