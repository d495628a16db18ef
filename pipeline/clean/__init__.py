"""Clean: validated rows -> missing values -> exact duplicates -> outliers -> typed values.

A step that needs whole-file statistics (imputed means, the duplicate table, outlier bounds) has
them computed from the rows of the steps before it; staged on disk (:mod:`pipeline.clean.staging`)
each such statistic is its own pass over the staged rows, so memory does not grow with the input.

Text rows, labelled or not, take their own chain (:func:`clean_labelled_text`): the quality
filters when configured (:mod:`pipeline.clean.quality`), normalise and mask the text, quarantine
empty ones, drop exact duplicates (same label and cleaned text), then quarantine near-duplicates
when configured (:mod:`pipeline.clean.near_duplicates`).
Each step is a lazy function over Dask collections; :func:`clean` chains them as configured. Rows a
step rejects go to the quarantine with their reason; duplicates are only counted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import dask.dataframe as dd

from pipeline.clean.coerce import coerce, value_dtype
from pipeline.clean.duplicates import apply_duplicates, drop_duplicates, duplicate_table
from pipeline.clean.missing import apply_missing, handle_missing, missing_stats
from pipeline.clean.near_duplicates import drop_near_duplicates
from pipeline.clean.outliers import apply_outliers, handle_outliers, outlier_bounds
from pipeline.clean.staging import stage
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


@dataclass(frozen=True)
class _Step:
    """One cleaning step: whole-file statistics of the rows it gets (None: needs none), and the
    per-partition apply that gives (rows, quarantined rows or None, lazy counts by name)."""

    stats: Callable | None
    apply: Callable


def _steps(cfg: CleanConfig, columns: list[str]) -> list[_Step]:
    steps = [_Step(None if cfg.missing.strategy == "drop" else partial(missing_stats, columns=columns,
                                                                        policy=cfg.missing),
                   partial(_missing, columns=columns, policy=cfg.missing))]
    if cfg.duplicates == "drop":
        steps.append(_Step(partial(duplicate_table, columns=columns), _duplicates))
    if cfg.outliers.method != "none":
        steps.append(_Step(partial(outlier_bounds, columns=columns, policy=cfg.outliers),
                           partial(_outliers, columns=columns, policy=cfg.outliers)))
    return steps


def _missing(rows, stats, columns, policy):
    kept, quarantine, imputed = apply_missing(rows, columns, policy, stats)
    return kept, quarantine, {"values_imputed": imputed}


def _duplicates(rows, table):
    kept, dropped = apply_duplicates(rows, table)
    return kept, None, {"duplicates_dropped": dropped}


def _outliers(rows, bounds, columns, policy):
    kept, quarantine, n_rows, n_values = apply_outliers(rows, columns, policy, bounds)
    return kept, quarantine, {f"outlier_rows_{policy.action}": n_rows, "outlier_values": n_values}


def clean(rows: dd.DataFrame, cfg: CleanConfig, schema: SchemaConfig, staging: Path | None = None) -> CleanResult:
    """Apply the configured cleaning steps to validated rows (see :mod:`pipeline.validate`).

    With ``staging`` (a folder every worker can write) and at least one step needing whole-file
    statistics, the rows are staged there after the steps before the first of them (dropping
    missing values needs none): each statistic is computed by a pass of its own over the staged
    rows, the result by a last pass, so no partition waits in memory for a statistic. The rows,
    quarantine and counts are the same either way. Without it, one graph computes everything from ``rows``.
    """
    columns = value_columns(schema)
    steps = _steps(cfg, columns)
    first = next((k for k, step in enumerate(steps) if step.stats is not None), len(steps))
    quarantined, counts = [], {"values_imputed": 0, "duplicates_dropped": 0}
    for step in steps[:first]:   # steps before the first statistic need one pass: done before staging
        rows, q, c = step.apply(rows, None)
        quarantined, counts = quarantined + ([q] if q is not None else []), {**counts, **c}
    steps = steps[first:]
    staged = stage(rows, staging, columns) if staging is not None and steps else None
    stats: list = []

    def through(k: int, pass_name: str):
        """(rows after ``k`` more steps, their quarantines, their counts) from a fresh read."""
        done = rows if staged is None else staged.read(pass_name, after=tuple(_lazy(stats)))
        quarantined, counts = [], {}
        for step, known in zip(steps[:k], stats):
            done, q, c = step.apply(done, known)
            quarantined += [q] if q is not None else []
            counts.update(c)
        return done, quarantined, counts

    for k, step in enumerate(steps):
        stats.append(step.stats(through(k, f"stats-{k}")[0]))
    done, more, last = through(len(steps), "rows")
    quarantined, counts = quarantined + more, {**counts, **last}
    return CleanResult(coerce(done, columns, schema), dd.concat(quarantined) if len(quarantined) > 1
                       else quarantined[0], counts)


def _lazy(stats: list) -> list:
    """The Dask collections among the statistics (a step's may be a tuple of them)."""
    flat = [x for s in stats for x in (s if isinstance(s, tuple) else (s,))]
    return [x for x in flat if hasattr(x, "dask")]


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
