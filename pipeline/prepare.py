"""Prepare: source -> validated rows -> split -> images -> augmented -> a published store version.

The stages are lazy functions; this module wires them together, persists the split table once
(so row counts become known) and lets the store do the one compute that writes everything.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from distributed import Client, progress

from pipeline import augment, features, ingest, provenance, store
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline.validate import validate


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
    duplicates: int


def _raw_hash(raw: pd.Series) -> pd.Series:
    """64-bit hash of each record's text: equal lines are duplicates."""
    return pd.util.hash_pandas_object(raw, index=False)


def _counts(rows, quarantine, records, client: Client, show_progress: bool):
    """Persist the split table and quarantine; learn partition lengths, split and reason counts."""
    n_records = records.map_partitions(len).sum()
    n_dup = n_records - records["raw"].map_partitions(_raw_hash, meta=("raw", "uint64")).nunique()
    rows, quarantine, n_records, n_dup = client.persist([rows, quarantine, n_records, n_dup])
    if show_progress:
        progress([rows, quarantine, n_records, n_dup], notebook=False)
    lengths = tuple(rows.map_partitions(len).compute())
    per_split = rows["split"].value_counts().compute().to_dict()
    reasons = quarantine["reason"].value_counts().compute()
    counts = _Counts(n_in=int(n_records.compute()), lengths=lengths,
                     per_split={name: int(per_split.get(i, 0)) for i, name in enumerate(features.SPLITS)},
                     quarantined={str(k): int(v) for k, v in reasons.items()}, duplicates=int(n_dup.compute()))
    return rows, quarantine, counts


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


def _cache_hit(ref: store.DatasetRef, start: float, log, how: str) -> Prepared:
    manifest = ref.manifest()
    if manifest.get("version") != ref.version:
        raise UserError(f"{ref.path}: manifest names version {manifest.get('version')!r}, not {ref.version}; "
                        f"the store was edited by hand, run `dcpipe datasets verify {ref}`")
    log(f"Dataset {ref} {how} (same sources, config and code): cache hit, nothing recomputed")
    return Prepared(ref, manifest, True, time.perf_counter() - start)


def _manifest(ref: store.DatasetRef, cfg: JobConfig, sources: list[dict], c: _Counts) -> dict:
    """What prepare knows of the version; the store adds variables, chunking, checksums, parent."""
    n = c.per_split
    n_train_stored = n["train"] * (1 + cfg.augment.copies)
    ranges = {"train": [0, n_train_stored],
              "val": [n_train_stored, n_train_stored + n["val"]],
              "test": [n_train_stored + n["val"], n_train_stored + n["val"] + n["test"]]}
    return {
        "dataset": ref.name, "version": ref.version,
        "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "records_in": c.n_in, "records_out": sum(c.lengths),
        "counts": {**n, "train_stored": n_train_stored},
        "n_train": n["train"], "n_train_stored": n_train_stored, "n_val": n["val"], "n_test": n["test"],
        "ranges": ranges, "quarantined": c.quarantined, "duplicates": c.duplicates,
        "augmentations": cfg.augment.model_dump() if cfg.augment.copies else {},
        "sources": sources, "config": cfg.data_part(),
        "code": {"hash": provenance.code_hash(), "git_commit": provenance.git_commit()},
        "packages": provenance.package_versions(),
    }


def prepare(cfg: JobConfig, root: Path, client: Client, log=print, show_progress: bool = True) -> Prepared:
    """Prepare (or find, when its content version exists) the dataset version for ``cfg``."""
    start = time.perf_counter()
    sources = provenance.describe_sources(ingest.resolve_paths(cfg.source))
    version = provenance.content_version(sources, cfg.data_part())
    ref = store.DatasetRef(root=root, name=cfg.dataset.name, version=version)
    if ref.exists():
        return _cache_hit(ref, start, log, "already prepared")

    records = ingest.read_records(cfg.source)
    n_workers = len(client.scheduler_info()["workers"])
    records = records.repartition(npartitions=max(records.npartitions, 2 * n_workers))
    checked = validate(records, cfg.schema, cfg.source.delimiter)
    rows = features.assign_split(checked.rows, cfg.split, cfg.seed)
    rows, quarantine, counts = _counts(rows, checked.quarantine, records, client, show_progress)
    n_out, n_quarantined = sum(counts.lengths), sum(counts.quarantined.values())
    if n_out == 0:
        raise _nothing_valid(quarantine, counts.n_in, cfg)
    if counts.n_in != n_out + n_quarantined:
        raise UserError(f"{ref.path}: records do not reconcile: {counts.n_in} in != {n_out} out + "
                        f"{n_quarantined} quarantined; this is a dcpipe bug, please report it")
    ds = features.to_dataset(rows, counts.lengths, cfg, [s["name"] for s in sources])
    rows_per_chunk = store.chunk_rows(cfg.store, store.sample_bytes(ds))
    ds = augment.augment_train(ds, counts.per_split["train"], cfg.augment, cfg.seed, rows_per_chunk)
    log(f"Writing {ref} ({n_out} rows, {n_quarantined} quarantined) to {ref.path}")
    published = store.publish(ds, quarantine, _manifest(ref, cfg, sources, counts), ref, cfg.store, log=log)
    if published.reused:
        return _cache_hit(ref, start, log, "was published meanwhile by another process")
    return Prepared(ref, published.manifest, False, time.perf_counter() - start)
