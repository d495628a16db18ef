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

import pandas as pd

from pipeline.clean.coerce import _cast, coerce, value_dtype
from pipeline.clean.duplicates import drop_duplicates, duplicate_table, without_duplicates
from pipeline.clean.missing import handle_missing, missing_fill, missing_split, missing_stats
from pipeline.clean.near_duplicates import drop_near_duplicates
from pipeline.clean.outliers import handle_outliers, mark_outliers, outlier_bounds, outlier_meta
from pipeline.clean.quality import filter_quality
from pipeline.clean.staging import stage
from pipeline.clean.text import clean_text
from pipeline.config import CleanConfig, SchemaConfig
from pipeline.partitions import per_partition, total
from pipeline.validate import quarantine_records, value_columns


@dataclass(frozen=True)
class CleanResult:
    """Lazy outputs: stored rows (``p0..pN``), quarantined rows, and lazy counts by name.

    ``last`` holds the last pass's outputs by name, aligned partition for partition: ``rows``,
    ``quarantine`` (when that pass quarantines) and one ``n`` frame per count it makes; ``earlier``
    the quarantine of the passes before it (``None`` if none). A consumer that wants several of
    them reads them together in ONE ``dd.map_partitions`` (the rows as they are written, their
    tallies): each partition's task then has one dependent and is released as soon as it ran.
    Given to separate reductions instead, ``dask.order`` finishes one reduction over every
    partition before it starts the next, so every partition of the last pass waits in memory.
    """

    rows: dd.DataFrame
    quarantine: dd.DataFrame
    counts: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)
    earlier: dd.DataFrame | None = None


@dataclass(frozen=True)
class _Step:
    """One cleaning step, split into what a pass over the rows needs.

    ``stats(rows) -> (known, lazy counts by name)``: the whole-file statistic every partition is
    given (None: the step needs none); ``part(frame, known) -> (kept, quarantined or None, counts)``:
    the step on one partition, ``counts`` the ints named by ``counts``; ``meta`` the kept rows' meta.
    """

    stats: Callable | None
    part: Callable
    counts: tuple[str, ...] = ()
    quarantines: bool = False
    meta: Callable = field(default=lambda meta: meta)   # build time only: never sent to a worker


def _steps(cfg: CleanConfig, columns: list[str]) -> list[_Step]:
    if cfg.missing.strategy == "drop":
        steps = [_Step(None, partial(_missing_drop, columns=columns), quarantines=True)]
    else:
        steps = [_Step(partial(_missing_stats, columns=columns, policy=cfg.missing),
                       partial(_missing_fill, columns=columns))]
    if cfg.duplicates == "drop":
        steps.append(_Step(partial(_duplicates_stats, columns=columns), _duplicates, ("duplicates_dropped",)))
    if cfg.outliers.method != "none":
        action = cfg.outliers.action
        steps.append(_Step(partial(_outliers_stats, columns=columns, policy=cfg.outliers),
                           partial(_outliers, columns=columns, action=action),
                           (f"outlier_rows_{action}", "outlier_values"), quarantines=True,
                           meta=partial(outlier_meta, action=action)))
    return steps


def _missing_drop(frame, known, columns):
    kept, quarantine = missing_split(frame, columns)
    return kept, quarantine, ()


def _missing_stats(rows, columns, policy):
    fill, n_missing = missing_stats(rows, columns, policy)
    return fill, {"values_imputed": n_missing}


def _missing_fill(frame, fill, columns):
    return missing_fill(frame, columns, fill), None, ()


def _duplicates_stats(rows, columns):
    return duplicate_table(rows, columns), {}


def _duplicates(frame, table):
    kept, dropped = without_duplicates(frame, table)
    return kept, None, (dropped,)


def _outliers_stats(rows, columns, policy):
    return outlier_bounds(rows, columns, policy), {}


def _outliers(frame, bounds, columns, action):
    kept, quarantine, n_rows, n_values = mark_outliers(frame, columns, bounds, action)
    return kept, quarantine, (n_rows, n_values)


def _run(source, read, parts: list, cast, with_quarantine: bool, *known) -> tuple:
    """One task of a pass: the partition (read back from its receipt when staged), through ``parts``
    in order, cast when it is the last pass: (rows, [their quarantine], *counts)."""
    frame = source if read is None else read(source)
    quarantined, counts = [], []
    for part, arg in zip(parts, known):
        frame, quarantine, n = part(frame, arg)
        quarantined += [quarantine] if quarantine is not None else []
        counts += n
    frame = frame if cast is None else cast(frame)
    if not with_quarantine:
        return (frame, *counts)
    return (frame, pd.concat(quarantined) if len(quarantined) > 1 else quarantined[0], *counts)


def _pass(base: dd.DataFrame, read, meta: pd.DataFrame, steps: list[_Step], known: list, cast, name: str):
    """(rows, quarantines, lazy counts by name, per-partition outputs by name) of ``steps`` applied
    in ONE task per partition of ``base`` (task keys ``clean-<name>``): no step's output is a task
    result of its own, held until every consumer of it has run."""
    if not steps and cast is None and read is None:
        return base, [], {}, {"rows": base}
    quarantine_meta = quarantine_records(meta, "missing_value")
    for step in steps:
        meta = step.meta(meta)
    with_quarantine = any(step.quarantines for step in steps)
    names = [n for step in steps for n in step.counts]
    metas = (meta if cast is None else cast(meta), *([quarantine_meta] if with_quarantine else []),
             *[None] * len(names))
    out = per_partition(base, _run, metas, read, [step.part for step in steps], cast, with_quarantine, *known,
                        name=f"clean-{name}")
    counts = dict(zip(names, map(total, out[1 + with_quarantine:])))
    parts = dict(zip(["rows", *(["quarantine"] if with_quarantine else []), *names], out))
    return out[0], list(out[1:1 + with_quarantine]), counts, parts


def clean(rows: dd.DataFrame, cfg: CleanConfig, schema: SchemaConfig, staging: Path | None = None) -> CleanResult:
    """Apply the configured cleaning steps to validated rows (see :mod:`pipeline.validate`).

    Every pass over the rows is one task per partition that runs its steps and lets their
    outputs go. Steps before the first that needs a whole-file statistic (dropping missing values
    needs none) run in a pass of their own; each statistic is then computed by a pass over the rows
    of the steps before it, and the result by a last pass through all of them, cast to the stored
    dtype. With ``staging`` (a folder every worker can write), the rows after the leading pass are
    staged there (:mod:`pipeline.clean.staging`) and every later pass reads them back, so no
    partition waits in memory for a statistic; without it, those passes start from ``rows``. The
    rows, quarantine and counts are the same either way.
    """
    columns = value_columns(schema)
    steps = _steps(cfg, columns)
    first = next((k for k, step in enumerate(steps) if step.stats is not None), len(steps))
    meta, cast = rows._meta, partial(_cast, columns=columns, dtype=value_dtype(schema))
    quarantined, counts = [], {"values_imputed": 0, "duplicates_dropped": 0}
    base, read = rows, None
    if first < len(steps):
        if first:      # the stat-free leading steps: one pass, before staging
            base, quarantined, counts_first, _ = _pass(rows, None, meta, steps[:first], [None] * first, None,
                                                       "leading")
            counts.update(counts_first)
            steps = steps[first:]
        if staging is not None:
            staged = stage(base, staging, columns)
            base, read = staged.receipts, staged.read
    known: list = []
    for k, step in enumerate(steps):
        if step.stats is None:
            known.append(None)
            continue
        arg, extra = step.stats(_pass(base, read, meta, steps[:k], known, None, f"stats-{k}")[0])
        known.append(arg)
        counts.update(extra)
    done, more, last, parts = _pass(base, read, meta, steps, known, cast, "rows")
    quarantine = _concat(quarantined + more)
    if quarantine is None:
        quarantine = dd.from_pandas(quarantine_records(meta, "missing_value"), npartitions=1)
    return CleanResult(done, quarantine, {**counts, **last}, parts, _concat(quarantined))


def _concat(frames: list[dd.DataFrame]) -> dd.DataFrame | None:
    """The frames one after the other; ``None`` when there are none."""
    return dd.concat(frames) if len(frames) > 1 else frames[0] if frames else None


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
