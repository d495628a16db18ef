"""Parquet: one partition per row group; the row number counts from 1 within each file."""
from __future__ import annotations

import dask.dataframe as dd
import pyarrow.parquet as pq
from dask import delayed

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, records_meta, register
from pipeline.sources.files import InputFile, resolve
from pipeline.sources.tables import field_names, table_records


def _metadata(f: InputFile) -> pq.FileMetaData:
    try:
        with f.fs.open(f.path, "rb") as fh:
            return pq.ParquetFile(fh).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise UserError(f"{f.path}: not a readable Parquet file ({exc}); copy it again") from None


def _row_group(f: InputFile, index: int, names: list[str], schema: SchemaConfig, first: int):
    with f.fs.open(f.path, "rb") as fh:
        table = pq.ParquetFile(fh).read_row_group(index, columns=names).to_pandas()
    return table_records(table, names, schema, f.name, first)


@register("parquet")
def read_parquet(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    files = resolve(cfg.path)
    parts = []
    for f in files:
        meta = _metadata(f)
        if meta.num_rows == 0:
            raise UserError(f"{f.path}: Parquet file has no rows; remove it from source.path")
        names = field_names(schema, meta.schema.to_arrow_schema().names, f.path)
        first = 1
        for g in range(meta.num_row_groups):
            parts.append(delayed(_row_group, pure=True)(f, g, names, schema, first))
            first += meta.row_group(g).num_rows
    records = dd.from_delayed(parts, meta=records_meta(schema.n_fields - 1), verify_meta=False)
    return Ingested(records, [f.describe() for f in files])
