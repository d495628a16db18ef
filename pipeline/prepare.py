"""Prepare: source -> validated rows -> cleaned -> split -> images -> augmented -> a published version.

The stages are lazy functions; this module wires them together, persists the split table once
(so row counts become known) and lets the store do the one compute that writes everything.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dask.dataframe as dd
from distributed import Client, progress

from pipeline import augment, features, gates, ingest, provenance, report, store
from pipeline.clean import clean
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline.validate import label_codes, validate


@dataclass(frozen=True)
class Prepared:
    ref: store.DatasetRef
    manifest: dict
    cached: bool
    seconds: float


def _counts(rows, quarantine, records, client: Client, show_progress: bool, extra: dict):
    """Persist the split table and quarantine; learn partition lengths, split and cleaning counts."""
    lazy = {k: v for k, v in extra.items() if hasattr(v, "dask")}
    rows, quarantine, n_records, *done = client.persist([rows, quarantine, records.map_partitions(len).sum(),
                                                        *lazy.values()])
    if show_progress:
        progress([rows, quarantine, n_records], notebook=False)
    lengths = tuple(rows.map_partitions(len).compute())
    per_split = rows["split"].value_counts().compute().to_dict()
    counts = {**extra, **dict(zip(lazy, client.gather(client.compute(done))))}
    return rows, quarantine, int(n_records.compute()), lengths, per_split, {k: int(v) for k, v in counts.items()}


def _report(ref: store.DatasetRef, rows, manifest: dict, cfg: JobConfig, client: Client) -> dict:
    """Compute the quality statistics (rows are persisted) and write report.json/html with the version."""
    lazy = report.lazy_stats(rows)
    stats = dict(zip(lazy, client.gather(client.compute(list(lazy.values())))))
    lazy_h = report.lazy_histograms(rows, stats)
    hists = dict(zip(lazy_h, client.gather(client.compute(list(lazy_h.values())))))
    codes = {code: name for name, code in label_codes(cfg.schema).items()}
    built = report.build(manifest, stats, codes)
    if ref.path.is_dir():
        report.write(ref.path, built, hists)
    return built


def _nothing_valid(quarantine, n_in: int, cfg: JobConfig) -> UserError:
    """The error when every record was quarantined, explained by the first bad record."""
    if n_in == 0:
        return UserError(f"{cfg.source.path}: the source holds no records; give a non-empty CSV")
    first = quarantine.head(1, npartitions=-1).iloc[0]
    detail = f"{first['reason']}"
    if first["reason"] == "wrong_field_count":
        found = len(str(first["raw"]).split(cfg.source.delimiter))
        detail += f": line {first['line']} has {found} fields, expected schema.n_fields = {cfg.schema.n_fields}"
    return UserError(f"{first['source']}: all {n_in} records were quarantined (e.g. {detail}); "
                     "fix the file or set source/schema in the config to match it")


def prepare(cfg: JobConfig, root: Path, client: Client, log=print, show_progress: bool = True) -> Prepared:
    """Prepare (or find, when its content version exists) the dataset version for ``cfg``."""
    start = time.perf_counter()
    if cfg.source.kind == "text":
        raise UserError("source.kind: text records have no numeric fields to store; clean them with "
                        "pipeline.clean.clean_text (see docs/ingest.md), or choose a table source")
    ingested = ingest.read_source(cfg.source, cfg.schema)
    sources = ingested.inputs
    version = provenance.content_version(sources, cfg.data_part())
    ref = store.DatasetRef(root=root, name=cfg.dataset.name, version=version)
    if ref.exists():
        log(f"Dataset {ref} already prepared (same sources, config and code): cache hit")
        manifest = ref.manifest()
        gates.check(manifest, cfg.gates, cfg.schema, str(ref))
        return Prepared(ref, manifest, True, time.perf_counter() - start)

    records = ingested.records
    n_workers = len(client.scheduler_info()["workers"])
    records = records.repartition(npartitions=max(records.npartitions, 2 * n_workers))
    checked = validate(records, cfg.schema)
    cleaned = clean(checked.rows, cfg.clean, cfg.schema)
    quarantine = dd.concat([checked.quarantine, cleaned.quarantine])
    rows = features.assign_split(cleaned.rows, cfg.split, cfg.seed)
    rows, quarantine, n_in, lengths, per_split, cleaning = _counts(rows, quarantine, records, client,
                                                                   show_progress, cleaned.counts)
    n_split = {name: int(per_split.get(i, 0)) for i, name in enumerate(features.SPLITS)}
    n_out = sum(lengths)
    if n_out == 0:
        raise _nothing_valid(quarantine, n_in, cfg)
    ds = features.to_dataset(rows, lengths, cfg, [s["name"] for s in sources])
    ds = augment.augment_train(ds, n_split["train"], cfg.augment, cfg.seed, cfg.store.chunk_rows)
    n_train_stored = n_split["train"] * (1 + cfg.augment.copies)
    ranges = {"train": [0, n_train_stored],
              "val": [n_train_stored, n_train_stored + n_split["val"]],
              "test": [n_train_stored + n_split["val"], n_train_stored + n_split["val"] + n_split["test"]]}
    names = {code: name for name, code in label_codes(cfg.schema).items()}
    label_counts = rows["label"].value_counts().compute()
    manifest = {
        "dataset": ref.name, "version": ref.version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records_in": n_in, "records_out": n_out,
        "duplicates_dropped": cleaning.pop("duplicates_dropped"), "cleaning": cleaning,
        "label_counts": {names.get(int(k), str(k)): int(v) for k, v in sorted(label_counts.items())},
        "n_train": n_split["train"], "n_train_stored": n_train_stored,
        "n_val": n_split["val"], "n_test": n_split["test"], "ranges": ranges,
        "augmentations": cfg.augment.model_dump() if cfg.augment.copies else {},
        "sources": sources, "config": cfg.data_part(),
        "code": {"hash": provenance.code_hash(), "git_commit": provenance.git_commit()},
        "packages": provenance.package_versions(),
    }
    log(f"Writing {ref} ({n_out} rows, {n_in - n_out - manifest['duplicates_dropped']} quarantined, "
        f"{manifest['duplicates_dropped']} duplicates dropped) to {ref.path}")
    committed = store.publish(ds, quarantine, manifest, ref, cfg.store)
    gates.reconcile(committed, str(ref.path))
    _report(ref, rows, committed, cfg, client)
    gates.check(committed, cfg.gates, cfg.schema, str(ref))
    return Prepared(ref, committed, False, time.perf_counter() - start)
