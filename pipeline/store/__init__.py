"""The dataset store: the only package that touches Zarr paths.

``layout`` (names, paths, locks), ``refs`` (NAME@VERSION specs, ``latest``, prefixes, tags),
``encoding`` (codecs, chunking; no I/O), ``checksums`` (per-file SHA-256, the manifest seal),
``writer`` (atomic publish), ``catalog`` (open, list, diff, verify, gc) and ``ready`` (the
pre-training check).
"""
from pipeline.store.catalog import Collected, catalog, diff, gc, open_dataset, open_version, verify
from pipeline.store.checksums import is_sealed, manifest_seal
from pipeline.store.encoding import CODECS, cf_attributes, chunk_rows, describe_variables, rows_per_chunk, sample_bytes
from pipeline.store.layout import (CHECKSUMS, DATA, LATEST, MANIFEST, QUARANTINE, DatasetRef, check_name,
                                   check_version, scratch_folder, versions)
from pipeline.store.ready import check_ready
from pipeline.store.refs import (TAGS, is_rejected, is_tag, parse_spec, rejected_gate, resolve, resolve_spec,
                                 tag, tags, tags_of)
from pipeline.store.writer import Publication, publish

__all__ = ["CHECKSUMS", "CODECS", "DATA", "LATEST", "MANIFEST", "QUARANTINE", "TAGS", "Collected", "DatasetRef",
           "Publication", "catalog", "cf_attributes", "check_name", "check_ready", "check_version", "chunk_rows",
           "describe_variables", "diff", "gc", "is_rejected", "is_sealed", "is_tag", "manifest_seal",
           "open_dataset", "open_version", "parse_spec", "publish", "rejected_gate", "resolve", "resolve_spec",
           "rows_per_chunk", "sample_bytes", "scratch_folder", "tag", "tags", "tags_of", "verify", "versions"]
