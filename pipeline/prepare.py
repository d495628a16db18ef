"""Prepare: source -> validated rows -> cleaned -> split -> features -> augmented -> a published version.

Tables (and images) are validated field by field and cleaned by :func:`pipeline.clean.clean`;
labelled text has its label judged (:func:`pipeline.validate.validate_labels`) and its text
cleaned by :func:`pipeline.clean.clean_labelled_text`. The rest is shared.

The stages are lazy functions; this module wires them together, computes the split table once
(so row counts become known) and lets the store do the one compute that writes everything. A
table's split rows are staged on disk at their stored width (:mod:`pipeline.clean.staging`), not
persisted: the report and the store read them back a partition at a time, so worker memory does
not grow with the input (persisted, a 20 GB CSV's rows outgrew two workers and spilled until the
disk was full). Text rows are persisted.
"""
from __future__ import annotations

import dataclasses
import errno
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dask.dataframe as dd
from distributed import Client, futures_of

from pipeline import augment, credentials, features, gates, ingest, partitions, progress, provenance, report, store
from pipeline.clean import clean, clean_labelled_text, staging, with_duplicate_of
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline.validate import label_codes, validate, validate_labels, validate_unlabelled, value_columns


MIN_PARTITIONS = 8   # of a small input (e.g. one gzip file): work for up to 8 workers


@dataclass(frozen=True)
class Prepared:
    ref: store.DatasetRef
    manifest: dict
    cached: bool
    seconds: float


@dataclass(frozen=True)
class _Counts:
    n_in: int
    lengths: tuple[int, ...]
    per_split: dict[str, int]
    quarantined: dict[str, int]
    cleaning: dict[str, int]          # duplicates_dropped and the cleaning steps' own counts
    label_counts: dict[str, int]


def _counts(rows, quarantine, records, client: Client, show_progress: bool, extra: dict, cfg: JobConfig, log,
            scratch: Path, held: list):
    """Stage (tables; text: persist) the split table and persist the quarantine (their futures
    added to ``held``); with them, in the same graph, the lengths, split, reason and cleaning
    counts and the report's statistics. Returns ``(rows, quarantine, counts, stats)``."""
    lazy = {k: v for k, v in extra.items() if hasattr(v, "dask")}
    staged = None if _is_text(cfg) else staging.stage(rows, scratch / "split", value_columns(cfg.schema),
                                                              name="staged-split")   # a split task
    # The counts and the report's statistics are reductions of the split rows as they are made, not
    # of the rows read back from the staging: no second pass, no second round trip (and the split
    # and label counts are the report's split x class table and label counts).
    report_rows, columns = _report_rows(rows, cfg)
    if columns is None:   # the reductions named the report's on the dashboard (text lengths are already)
        report_rows = report_rows.map_partitions(_same, meta=report_rows._meta, token="report-rows")
    lazy_stats = {**report.lazy_stats(report_rows, columns), "split_by_label": report.lazy_split_by_label(rows)}
    small = [rows.map_partitions(len), quarantine["reason"].value_counts(split_out=1),
             records.map_partitions(len).sum(), *lazy.values(), *lazy_stats.values()]
    # ingest, validate, clean and split, named so on the dashboard
    persisted = progress.persist(client, [rows if staged is None else staged.receipts, quarantine, *small],
                                 "ingest", show_progress, log)
    held.extend(futures_of(persisted))
    rows, quarantine, *small = partitions.wait_persisted(persisted)   # why: pipeline/partitions.py
    # the receipts (a row per partition) and the small results to the client: the staged reads then
    # depend on no task
    lengths, reasons, n_in, *values = progress.compute(
        client, [*small, *([] if staged is None else [rows])], "split", show=False)
    if staged is not None:
        rows = staged.rows(values.pop())
    cleaning = {**extra, **dict(zip(lazy, values[:len(lazy)]))}
    stats = dict(zip(lazy_stats, values[len(lazy):]))
    per_split = stats["split_by_label"].groupby(level=0).sum()
    names = {code: name for name, code in label_codes(cfg.schema).items()}
    counts = _Counts(n_in=int(n_in), lengths=tuple(int(n) for n in lengths),
                     per_split={name: int(per_split.get(i, 0)) for i, name in enumerate(features.SPLITS)},
                     quarantined={str(k): int(v) for k, v in reasons.items()},
                     cleaning={k: int(v) for k, v in cleaning.items()},
                     label_counts={names.get(int(k), str(k)): int(v)
                                   for k, v in sorted(stats["label_counts"].items())})
    return rows, quarantine, counts, stats


def _report_rows(rows, cfg: JobConfig):
    """The rows the report describes and their columns (None: the value columns)."""
    return (report.text_lengths(rows), report.TEXT_COLUMNS) if _is_text(cfg) else (rows, None)


def _same(frame):
    return frame


def _report(rows, stats: dict, manifest: dict, cfg: JobConfig, client: Client, show_progress: bool, log):
    """The report of the split rows from their statistics (:func:`_counts`); returns ``(draw, write)``:
    ``draw()`` starts drawing the charts in a thread, ``write(folder)`` writes report.json/html into a folder."""
    rows, columns = _report_rows(rows, cfg)
    lazy_h = report.lazy_histograms(rows, stats, columns)
    hists = dict(zip(lazy_h, progress.compute(client, list(lazy_h.values()), "report-histograms", show_progress, log)))
    codes = {code: name for name, code in label_codes(cfg.schema).items()}
    built = report.build(manifest, stats, codes, stats["split_by_label"])
    drawn = []

    def draw():
        """The charts need the statistics alone: drawn in a thread once the version's graph is sent
        (earlier, they held up building it), while the workers write (0.6 s off a cache miss's
        critical path on 2 cores); the montage needs the written version."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcpipe-report-charts")
        drawn.append(pool.submit(report.charts, built, hists))
        pool.shutdown(wait=False)

    def write(folder):
        with progress.LocalBar("report", 1, show=show_progress, log=log) as bar:
            report.write(folder, built, hists, codes, drawn[0].result() if drawn else None)
            bar.update()
    return draw, write


def _nothing_valid(quarantine, n_in: int, cfg: JobConfig) -> UserError:
    """The error when every record was quarantined, explained by the first bad record."""
    if n_in == 0:
        return UserError(f"{credentials.mask(cfg.source.path)}: the source holds no records; give a non-empty CSV")
    first = quarantine.head(1, npartitions=-1).iloc[0]
    detail = f"{first['reason']}"
    if first["reason"] == "wrong_field_count" and _is_text(cfg):
        detail += f": line {first['line']} has no {cfg.source.delimiter!r} between label and text (source.delimiter)"
    elif first["reason"] == "wrong_field_count":
        found = len(str(first["raw"]).split(cfg.source.delimiter))
        detail += f": line {first['line']} has {found} fields, expected schema.n_fields = {cfg.schema.n_fields}"
    return UserError(f"{first['source']}: all {n_in} records were quarantined (e.g. {detail}); "
                     "fix the file or set source/schema in the config to match it")


def _cache_hit(ref: store.DatasetRef, cfg: JobConfig, start: float, log, how: str) -> Prepared:
    manifest = ref.manifest()
    if manifest.get("version") != ref.version:
        raise UserError(f"{ref.path}: manifest names version {manifest.get('version')!r}, not {ref.version}; "
                        f"the store was edited by hand, run `dcpipe datasets verify {ref}`")
    log(f"Dataset {ref} {how} (same sources, config and code): cache hit, nothing recomputed")
    gates.check(manifest, cfg.gates, cfg.schema, str(ref))      # the gates in force now
    gates.check_recorded(manifest)                               # and the verdict when it was published
    return Prepared(ref, manifest, True, time.perf_counter() - start)


def _manifest(ref: store.DatasetRef, cfg: JobConfig, sources: list[dict], c: _Counts) -> dict:
    """What prepare knows of the version; the store adds variables, chunking, checksums, parent."""
    n = c.per_split
    n_train_stored = n["train"] * (1 + cfg.augment.copies)
    ranges = {"train": [0, n_train_stored],
              "val": [n_train_stored, n_train_stored + n["val"]],
              "test": [n_train_stored + n["val"], n_train_stored + n["val"] + n["test"]]}
    cleaning = dict(c.cleaning)
    return {
        "dataset": ref.name, "version": ref.version,
        "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "records_in": c.n_in, "records_out": sum(c.lengths),
        "quarantined": c.quarantined, "duplicates_dropped": cleaning.pop("duplicates_dropped", 0),
        "cleaning": cleaning, "label_counts": c.label_counts,
        **({"labelled": False} if features.is_packed(cfg) else {}),
        "counts": {**n, "train_stored": n_train_stored},
        "n_train": n["train"], "n_train_stored": n_train_stored, "n_val": n["val"], "n_test": n["test"],
        "ranges": ranges, "augmentations": cfg.augment.model_dump() if cfg.augment.copies else {},
        "sources": sources, "config": cfg.data_part(),
        "code": {"hash": provenance.code_hash(), "git_commit": provenance.git_commit()},
        "packages": provenance.package_versions(),
    }


def _packed_manifest(manifest: dict, ds) -> dict:
    """A packed corpus counts sequences per split (records_out stays documents, for reconciliation)."""
    n = ds.attrs["sequences"]
    ranges = {"train": [0, n["train"]], "val": [n["train"], n["train"] + n["val"]],
              "test": [n["train"] + n["val"], n["train"] + n["val"] + n["test"]]}
    return {**manifest, "documents": manifest["counts"], "tokens": ds.attrs["tokens"],
            "counts": {**n, "train_stored": n["train"]}, "n_train": n["train"], "n_train_stored": n["train"],
            "n_val": n["val"], "n_test": n["test"], "ranges": ranges, "packed_length": ds.attrs["packed_length"]}


def _with_tokenizer(write_report, ds):
    """``write_report`` that also writes ``tokenizer.json`` (the fitted tokenizer, for fine-tuning datasets)."""
    from pipeline.transforms import FeatureTransform
    tokenizer = FeatureTransform.from_json(ds.attrs["features"]).transforms[0].state["tokenizer"]

    def write(folder):
        write_report(folder)
        (Path(folder) / "tokenizer.json").write_text(tokenizer)
    return write


def _is_text(cfg: JobConfig) -> bool:
    return cfg.source.is_text


def _stages(records, cfg: JobConfig, scratch: Path):
    """(split rows, quarantine, cleaning counts) of the records; lazy. Tables stage their validated
    rows in ``scratch`` between the whole-file cleaning passes (:mod:`pipeline.clean.staging`)."""
    if _is_text(cfg):
        checked = (validate_labels if cfg.source.labelled else validate_unlabelled)(records, cfg.schema)
        cleaned = clean_labelled_text(checked.rows, cfg.clean)
        if "duplicate_of" in cleaned.quarantine.columns:
            checked = dataclasses.replace(checked, quarantine=with_duplicate_of(checked.quarantine))
    else:
        checked = validate(records, cfg.schema)
        cleaned = clean(checked.rows, cfg.clean, cfg.schema, staging=scratch)
    quarantine = dd.concat([checked.quarantine, cleaned.quarantine])
    return features.assign_split(cleaned.rows, cfg.split, cfg.seed), quarantine, cleaned.counts


@dataclass(frozen=True)
class Located:
    """The sources read (lazily) and the version they make; ``cached`` when it is already stored."""

    ingested: object          # pipeline.sources.Ingested
    ref: store.DatasetRef
    cached: Prepared | None


def locate(cfg: JobConfig, root: Path, log=print) -> Located:
    """Check the config against the source, hash the sources, and find the version they make; no
    cluster needed (a cache hit starts none)."""
    start = time.perf_counter()
    features.resolve_features(cfg)   # a features section that does not fit the source fails before any work
    ingested = ingest.read_source(cfg.source, cfg.schema)
    version = provenance.content_version(ingested.inputs, cfg.data_part())
    ref = store.DatasetRef(root=root, name=cfg.dataset.name, version=version)
    cached = _cache_hit(ref, cfg, start, log, "already prepared") if ref.exists() else None
    return Located(ingested, ref, cached)


def prepare(cfg: JobConfig, root: Path, client: Client, log=print, show_progress: bool = True,
            located: Located | None = None) -> Prepared:
    """Prepare (or find, when its content version exists) the dataset version for ``cfg``."""
    start = time.perf_counter()
    located = located or locate(cfg, root, log)
    if located.cached is not None:
        return located.cached
    scratch = store.scratch_folder(located.ref.root, located.ref.name, located.ref.version)
    held = []   # what prepare persisted
    try:
        prepared = _prepare(cfg, client, log, show_progress, located, scratch, start, held)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise UserError(f"{located.ref.root}: no space left on device while preparing {located.ref} ({exc}); "
                        "free space there and in the Dask workers' local directory (distributed's "
                        "temporary-directory, where they spill), or give a --workdir on a larger disk") from None
    finally:   # the staged rows are needed until the version is written (a lost worker recomputes from them)
        shutil.rmtree(scratch, ignore_errors=True)
    # Released now, not when a garbage collection breaks the cycles that hold the collections: a run
    # stops its workers next, and the scheduler warned of "lost computed tasks" on every run (released,
    # not cancelled: see progress.release). Not after a failure: a Ctrl-C reaches the whole process
    # group, and a cancel waiting on the scheduler there hung the interrupted run (tests/pipeline/
    # test_early_ranks.py, 2 runs of 4); the release waits on it too.
    progress.release(client, held)
    return prepared


def _prepare(cfg: JobConfig, client: Client, log, show_progress: bool, located: Located, scratch: Path,
             start: float, held: list) -> Prepared:
    ingested, ref = located.ingested, located.ref
    sources = ingested.inputs

    # The partitioning decides the quarantine's files and the report's reduction tree: it depends on
    # the input alone (its blocks, at least MIN_PARTITIONS), never on the workers, so that a version
    # is byte-identical however many workers wrote it.
    records = ingested.records
    records = records.repartition(npartitions=max(records.npartitions, MIN_PARTITIONS))
    rows, quarantine, cleaning = _stages(records, cfg, scratch)
    rows, quarantine, counts, stats = _counts(rows, quarantine, records, client, show_progress, cleaning, cfg, log,
                                              scratch, held)
    if sum(counts.lengths) == 0:
        raise _nothing_valid(quarantine, counts.n_in, cfg)
    manifest = _manifest(ref, cfg, sources, counts)
    gates.reconcile(manifest, str(ref.path))
    manifest["quality"] = gates.verdict(manifest, cfg.gates, cfg.schema, str(ref))
    draw_charts, write_report = _report(rows, stats, manifest, cfg, client, show_progress, log)
    ds = features.to_dataset(rows, counts.lengths, cfg, [s["name"] for s in sources])
    if features.is_packed(cfg):
        manifest, write_report = _packed_manifest(manifest, ds), _with_tokenizer(write_report, ds)
    else:
        rows_per_chunk = store.chunk_rows(cfg.store, store.sample_bytes(ds))
        ds = augment.augment_train(ds, counts.per_split["train"], cfg.augment, cfg.seed, rows_per_chunk)
    log(f"Writing {ref} ({manifest['records_out']} rows, {sum(counts.quarantined.values())} quarantined, "
        f"{manifest['duplicates_dropped']} duplicates dropped) to {ref.path}")
    published = store.publish(ds, quarantine, manifest, ref, cfg.store, log=log, extra_files=write_report,
                              compute=lambda writes: progress.compute(client, writes, "features", show_progress, log,
                                                                      sent=draw_charts),
                              show_progress=show_progress)
    if published.reused:
        return _cache_hit(ref, cfg, start, log, "was published meanwhile by another process")
    gates.check(published.manifest, cfg.gates, cfg.schema, str(ref))   # published anyway: inspect it
    return Prepared(ref, published.manifest, False, time.perf_counter() - start)
