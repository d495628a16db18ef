"""Prepare: source -> validated rows -> split -> images -> augmented -> a published store version.

The stages are lazy functions; this module wires them together, persists the split table once
(so row counts become known) and lets the store do the one compute that writes everything.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

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


def _counts(rows, quarantine, records, client: Client, show_progress: bool):
    """Persist the split table and quarantine; learn partition lengths and split counts."""
    rows, quarantine, n_records = client.persist([rows, quarantine, records.map_partitions(len).sum()])
    if show_progress:
        progress([rows, quarantine, n_records], notebook=False)
    lengths = tuple(rows.map_partitions(len).compute())
    per_split = rows["split"].value_counts().compute().to_dict()
    return rows, quarantine, int(n_records.compute()), lengths, per_split


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
    sources = provenance.describe_sources(ingest.resolve_paths(cfg.source))
    version = provenance.content_version(sources, cfg.data_part())
    ref = store.DatasetRef(root=root, name=cfg.dataset.name, version=version)
    if ref.exists():
        log(f"Dataset {ref} already prepared (same sources, config and code): cache hit")
        return Prepared(ref, ref.manifest(), True, time.perf_counter() - start)

    records = ingest.read_records(cfg.source)
    n_workers = len(client.scheduler_info()["workers"])
    records = records.repartition(npartitions=max(records.npartitions, 2 * n_workers))
    checked = validate(records, cfg.schema, cfg.source.delimiter)
    rows = features.assign_split(checked.rows, cfg.split, cfg.seed)
    rows, quarantine, n_in, lengths, per_split = _counts(rows, checked.quarantine, records, client,
                                                         show_progress)
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
    manifest = {
        "dataset": ref.name, "version": ref.version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records_in": n_in, "records_out": n_out,
        "n_train": n_split["train"], "n_train_stored": n_train_stored,
        "n_val": n_split["val"], "n_test": n_split["test"], "ranges": ranges,
        "augmentations": cfg.augment.model_dump() if cfg.augment.copies else {},
        "sources": sources, "config": cfg.data_part(),
        "code": {"hash": provenance.code_hash(), "git_commit": provenance.git_commit()},
        "packages": provenance.package_versions(),
    }
    log(f"Writing {ref} ({n_out} rows, {n_in - n_out} quarantined) to {ref.path}")
    committed = store.publish(ds, quarantine, manifest, ref, cfg.store)
    n_quarantined = sum(committed["quarantined"].values())
    if n_in != n_out + n_quarantined:
        raise UserError(f"{ref.path}: records do not reconcile: {n_in} in != {n_out} out + "
                        f"{n_quarantined} quarantined; this is a dcpipe bug, please report it")
    return Prepared(ref, committed, False, time.perf_counter() - start)
