"""Parquet: one partition per row group; the row number counts from 1 within each file."""
from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pyarrow.parquet as pq
from dask import delayed

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, records_meta, register
from pipeline.sources.files import InputFile, resolve
from pipeline.sources.tables import raw_json, field_names, table_records
from pipeline.sources.text import LABELLED_META, check_text_field, field_records


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


def _text_row_group(f: InputFile, index: int, cfg: SourceConfig, schema: SchemaConfig, first: int):
    names = [cfg.text_field] + ([cfg.label_field] if cfg.labelled else [])
    with f.fs.open(f.path, "rb") as fh:
        table = pq.ParquetFile(fh).read_row_group(index, columns=names).to_pandas()
    return field_records(table, cfg, schema, f.name, first, raw_json(table))


def _text_parts(f: InputFile, meta: pq.FileMetaData, cfg: SourceConfig, schema: SchemaConfig) -> list:
    check_text_field(cfg, meta.schema.to_arrow_schema().names, f.path)
    starts = np.cumsum([1] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    return [delayed(_text_row_group, pure=True)(f, g, cfg, schema, int(starts[g])) for g in range(meta.num_row_groups)]


@register("parquet")
def read_parquet(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    files = resolve(cfg.path)
    parts = []
    for f in files:
        meta = _metadata(f)
        if meta.num_rows == 0:
            raise UserError(f"{f.path}: Parquet file has no rows; remove it from source.path")
        if cfg.text_field is not None:
            parts.extend(_text_parts(f, meta, cfg, schema))
            continue
        names = field_names(schema, meta.schema.to_arrow_schema().names, f.path)
        first = 1
        for g in range(meta.num_row_groups):
            parts.append(delayed(_row_group, pure=True)(f, g, names, schema, first))
            first += meta.row_group(g).num_rows
    meta = LABELLED_META if cfg.text_field is not None else records_meta(schema.n_fields - 1)
    records = dd.from_delayed(parts, meta=meta, verify_meta=False)
    return Ingested(records, [f.describe() for f in files])
