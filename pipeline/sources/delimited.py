"""CSV and TSV (gzip or plain; header or none): each line is one record of ``schema.n_fields`` fields.

A line with another number of fields is ``wrong_field_count``; a field that is not a number is
``not_numeric``; an empty field is missing (NaN), left for the clean stage to drop or impute.
Quoted fields are not interpreted: numeric tables do not need them.

``schema.header`` is checked against line 1: with ``header: true``, a first line whose fields are
all numbers is data, not names (it would be dropped silently); with ``header: false``, a first line
(of the first file) whose value fields are all non-numeric names is a header (it would only be
quarantined). Both are one-line errors saying which setting to change.
"""
from __future__ import annotations

import csv
import io
from functools import partial

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, make_records, records_meta, register
from pipeline.sources.files import InputFile, resolve
from pipeline.sources.lines import read_lines


def _numeric_block(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, per-row 'has a non-numeric field') from a block read as text where needed."""
    text_cols = [j for j, name in enumerate(table.columns) if table[name].dtype.kind not in "fiub"]
    if not text_cols:  # the common case: the C parser read every column as numbers
        return table.to_numpy(dtype="float64", na_value=np.nan), np.zeros(len(table), dtype=bool)
    values = np.empty(table.shape, dtype="float64")
    num_cols = [j for j in range(table.shape[1]) if j not in set(text_cols)]
    values[:, num_cols] = table.iloc[:, num_cols].to_numpy(dtype="float64", na_value=np.nan)
    bad = np.zeros(len(table), dtype=bool)
    for j in text_cols:
        col = table.iloc[:, j]
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad |= np.isnan(num) & col.notna().to_numpy()
        values[:, j] = num
    return values, bad


def _fields_table(lines: list[str], delimiter: str, label_pos: int) -> pd.DataFrame:
    """Lines with the right field count as a table (C parser; plain split if it sees other rows)."""
    try:
        table = pd.read_csv(io.StringIO("\n".join(lines)), sep=delimiter, header=None, lineterminator="\n",
                            quoting=csv.QUOTE_NONE, na_values=[""], keep_default_na=False,
                            dtype={label_pos: "string"}, engine="c", skip_blank_lines=False)
        if len(table) == len(lines):
            return table
    except (ValueError, pd.errors.ParserError):
        pass
    table = pd.DataFrame([ln.split(delimiter) for ln in lines]).replace("", None)
    table[label_pos] = table[label_pos].astype("string")
    return table


def parse_delimited(lines: list[str], f: InputFile, first: int, *, delimiter: str, n_fields: int,
                    label_pos: int) -> pd.DataFrame:
    """Records from delimited text lines (one partition)."""
    n = len(lines)
    ok = np.fromiter((ln.count(delimiter) for ln in lines), dtype=np.int64, count=n) == n_fields - 1
    reason = np.full(n, None, dtype=object)
    reason[~ok] = "wrong_field_count"
    label = np.full(n, None, dtype=object)
    values = np.full((n, n_fields - 1), np.nan)
    idx = np.flatnonzero(ok)
    if len(idx):
        table = _fields_table([lines[i] for i in idx], delimiter, label_pos)
        label_col = table.pop(label_pos).str.strip()
        label[idx] = label_col.to_numpy(dtype=object, na_value=None)
        label[idx[(label_col == "").to_numpy(dtype=bool, na_value=False)]] = None
        vals, bad = _numeric_block(table)
        values[idx] = vals
        reason[idx[bad]] = "not_numeric"
    return make_records(f.name, np.arange(first, first + n), lines, reason, label, values)


def _read_header(f: InputFile, delimiter: str) -> list[str]:
    try:
        with f.open("rt") as fh:
            line = fh.readline()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"{f.path}:1: cannot read the header ({exc})") from None
    return [c.strip() for c in line.rstrip("\r\n").split(delimiter)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header_is_data(f: InputFile, fields: list[str], n_fields: int) -> None:
    if len(fields) == n_fields and all(_is_number(v) for v in fields):
        raise UserError(f"{f.path}:1: schema.header is true but line 1 is a record ({n_fields} numbers, e.g. "
                        f"{', '.join(fields[:3])}), not field names: it would be dropped; set schema.header: false")


def check_no_header(f: InputFile, schema: SchemaConfig, delimiter: str) -> None:
    """With ``header: false``, refuse a first line of field names (every value field non-numeric)."""
    try:
        fields = _read_header(f, delimiter)
    except UserError:        # unreadable: the read of the records says so, with the line
        return
    label = schema.label_index()
    values = [v for i, v in enumerate(fields) if i != label]
    if len(fields) == schema.n_fields and all(v and not _is_number(v) for v in values):
        raise UserError(f"{f.path}:1: line 1 looks like a header (field names such as {values[0]!r}), but "
                        "schema.header is false: it would be quarantined as not_numeric; set schema.header: true")


def _check_headers(files: list[InputFile], schema: SchemaConfig, delimiter: str) -> list[str]:
    """The field names from the headers; every file's header must match (and ``schema.columns``)."""
    expected = list(schema.columns) if schema.columns else _read_header(files[0], delimiter)
    for f in files:
        found = _read_header(f, delimiter)
        _header_is_data(f, found, schema.n_fields)
        if found != expected:
            diff = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b),
                        min(len(found), len(expected)))
            raise UserError(f"{f.path}:1: header does not match: field {diff + 1} is "
                            f"{(found[diff:diff + 1] or ['<none>'])[0]!r}, expected "
                            f"{(expected[diff:diff + 1] or ['<none>'])[0]!r} ({len(found)} fields, expected "
                            f"{len(expected)}); fix the file or schema.columns")
    if len(expected) != schema.n_fields:
        raise UserError(f"{files[0].path}:1: header has {len(expected)} fields but schema.n_fields is "
                        f"{schema.n_fields}; fix schema.n_fields")
    return expected


def delimited_records(cfg: SourceConfig, schema: SchemaConfig, delimiter: str) -> dd.DataFrame:
    """The lazy records of delimited files (headers are checked now); no provenance pass."""
    files = resolve(cfg.path)
    names = _check_headers(files, schema, delimiter) if schema.header else None
    if not schema.header:
        check_no_header(files[0], schema, delimiter)
    parse = partial(parse_delimited, delimiter=delimiter, n_fields=schema.n_fields,
                    label_pos=schema.label_index(names))
    return read_lines(files, cfg.blocksize, parse, records_meta(schema.n_fields - 1), skip_header=schema.header)


def _read(cfg: SourceConfig, schema: SchemaConfig, delimiter: str) -> Ingested:
    records = delimited_records(cfg, schema, delimiter)
    return Ingested(records, [f.describe(text=True) for f in resolve(cfg.path)])


@register("csv")
def read_csv(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    return _read(cfg, schema, cfg.delimiter)


@register("tsv")
def read_tsv(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    return _read(cfg, schema, "\t")
