"""The dataset store: the only package that touches Zarr paths.

``layout`` (names, paths, locks), ``encoding`` (codecs, chunking; no I/O), ``checksums`` (per-file
SHA-256), ``writer`` (atomic publish) and ``catalog`` (open, list, diff, verify, gc).
"""
from pipeline.store.catalog import catalog, diff, gc, open_dataset, open_version, verify
from pipeline.store.encoding import CODECS, chunk_rows, describe_variables, rows_per_chunk, sample_bytes
from pipeline.store.layout import (CHECKSUMS, DATA, LATEST, MANIFEST, QUARANTINE, DatasetRef, check_name,
                                   check_version, parse_spec, resolve, versions)
from pipeline.store.writer import Publication, publish

__all__ = ["CHECKSUMS", "CODECS", "DATA", "LATEST", "MANIFEST", "QUARANTINE", "DatasetRef", "Publication",
           "catalog", "check_name", "check_version", "chunk_rows", "describe_variables", "diff", "gc",
           "open_dataset", "open_version", "parse_spec", "publish", "resolve", "rows_per_chunk",
           "sample_bytes", "verify", "versions"]
