"""Named-column tables (Parquet, SQL, JSON lines) as records: fields picked by name, in schema order."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.config import SchemaConfig
from pipeline.errors import UserError
from pipeline.sources.base import label_text, make_records


def field_names(schema: SchemaConfig, found: list[str], where: str) -> list[str]:
    """The fields to read: ``schema.columns`` (all must exist in ``found``) or all of ``found``."""
    if schema.columns is None:
        if len(found) != schema.n_fields:
            raise UserError(f"{where}: has {len(found)} columns {found[:6]} but schema.n_fields is "
                            f"{schema.n_fields}; set schema.columns to the fields to read")
        return list(found)
    missing = [c for c in schema.columns if c not in found]
    if missing:
        raise UserError(f"{where}: columns {missing[:5]} of schema.columns are missing (found "
                        f"{found[:8]}); fix schema.columns")
    return list(schema.columns)


def raw_json(table: pd.DataFrame) -> list[str]:
    return [json.dumps(rec, default=str) for rec in table.to_dict(orient="records")]


def table_records(table: pd.DataFrame, names: list[str], schema: SchemaConfig, source: str,
                  first: int) -> pd.DataFrame:
    """Records from a table partition whose first row is row number ``first`` of ``source``."""
    table = table[names]
    label_name = names[schema.label_index(names)]
    values_table = table.drop(columns=[label_name])
    values = np.empty(values_table.shape, dtype="float64")
    bad = np.zeros(len(table), dtype=bool)
    for j, name in enumerate(values_table.columns):
        col = values_table[name]
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad |= np.isnan(num) & col.notna().to_numpy()
        values[:, j] = num
    reason = np.where(bad, "not_numeric", None).astype(object)
    label = label_text(table[label_name].astype(object).to_numpy())
    return make_records(source, np.arange(first, first + len(table)), raw_json(table), reason, label, values)
