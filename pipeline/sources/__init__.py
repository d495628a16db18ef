"""Sources: one module per input kind behind one registry (``base.register``); see ``base`` for the
record table they all produce."""
from pipeline.sources import delimited, images, jsonl, parquet, sql, text, xarray_source  # noqa: F401  (register)
from pipeline.sources.base import Ingested, kinds, read, records_meta, value_names
from pipeline.sources.files import embedded_mnist_path

__all__ = ["Ingested", "embedded_mnist_path", "kinds", "read", "records_meta", "value_names"]
