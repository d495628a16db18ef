"""JSON lines: one JSON object per line, fields by name (``schema.columns``).

A line that is not a JSON object is ``malformed``; an object whose keys are not exactly the
schema's columns is ``wrong_field_count``; a null field is missing.
"""
from __future__ import annotations

import json
from functools import partial

import numpy as np
import pandas as pd

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, records_meta, register
from pipeline.sources.files import InputFile, resolve
from pipeline.sources.lines import read_lines
from pipeline.sources.tables import table_records
from pipeline.sources.text import LABELLED_META, field_records


def _object(line: str) -> dict | None:
    """The line's JSON object, or None when it is not valid JSON or not an object."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_jsonl(lines: list[str], f: InputFile, first: int, *, schema: SchemaConfig) -> pd.DataFrame:
    names = list(schema.columns)
    wanted = set(names)
    objects, reason = [], np.full(len(lines), None, dtype=object)
    for i, line in enumerate(lines):
        obj = _object(line)
        if obj is None:
            reason[i] = "malformed"
        elif set(obj) != wanted:
            reason[i] = "wrong_field_count"
        objects.append(obj if reason[i] is None else {})
    table = pd.DataFrame.from_records(objects, columns=names)
    parts = table_records(table, names, schema, f.name, first)
    parts["raw"] = pd.array(lines, dtype="string")
    parts["reason"] = parts["reason"].where(pd.isna(pd.array(reason, dtype="string")),
                                            pd.array(reason, dtype="string"))
    return parts


def parse_text_jsonl(lines: list[str], f: InputFile, first: int, *, cfg: SourceConfig,
                     schema: SchemaConfig) -> pd.DataFrame:
    """Text records from the ``source.text_field`` of JSON objects (other keys are ignored)."""
    objects, reason = [], [None] * len(lines)
    for i, line in enumerate(lines):
        obj = _object(line)
        if obj is None:
            reason[i], obj = "malformed", {}
        objects.append(obj)
    return field_records(pd.DataFrame.from_records(objects) if objects else pd.DataFrame(), cfg, schema,
                         f.name, first, lines, reason)


@register("jsonl")
def read_jsonl(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    if cfg.text_field is not None:
        files = resolve(cfg.path)
        records = read_lines(files, cfg.blocksize, partial(parse_text_jsonl, cfg=cfg, schema=schema), LABELLED_META)
        return Ingested(records, [f.describe(text=True) for f in files])
    if schema.columns is None:
        raise UserError("schema.columns: a jsonl source needs the field names; list them, label included")
    files = resolve(cfg.path)
    records = read_lines(files, cfg.blocksize, partial(parse_jsonl, schema=schema),
                         records_meta(schema.n_fields - 1))
    return Ingested(records, [f.describe(text=True) for f in files])

