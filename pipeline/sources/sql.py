"""A SQL table or query through a SQLAlchemy URL (SQLite needs nothing else; PostgreSQL needs psycopg).

``source.path`` is the URL, ``source.query`` a table name or a SELECT. With ``source.order_by`` the
rows are read in partitions of ``rows_per_partition`` (ORDER BY ... LIMIT/OFFSET), so row numbers
are stable; without it the query is one partition, numbered in the order the server returns.
The row count and column names are read when the job is planned; the rows when it runs.

Credentials: ``${VAR}`` references in the URL (``postgresql://ann:${PGPASSWORD}@db/x``) are
expanded from the environment only when connecting (on the workers, for the rows), so no password
is stored anywhere; a literal password is masked wherever the URL is shown or stored
(``pipeline.credentials``). A URL without a password leaves libpq to ``PGPASSWORD``/``~/.pgpass``.
"""
from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import dask.dataframe as dd
import pandas as pd
from dask import delayed

from pipeline import credentials
from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, records_meta, register
from pipeline.sources.tables import field_names, table_records

if TYPE_CHECKING:
    import sqlalchemy as sa

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _select(query: str) -> str:
    return f"SELECT * FROM {query}" if _NAME.match(query) else query


def _engine(url: str) -> sa.Engine:
    """An engine for ``url`` with its ``${VAR}`` references expanded (here, and only here)."""
    import sqlalchemy as sa   # imported by SQL sources only: 0.2 s of every `dcpipe` start otherwise
    real = credentials.expand(url)
    try:
        return sa.create_engine(real)
    except (sa.exc.ArgumentError, ImportError) as exc:
        said = str(exc).replace(real, _shown(url)).replace(url, _shown(url))
        raise UserError(f"source.path: not a usable SQLAlchemy URL ({said}); e.g. sqlite:///data.db") from None


def _shown(url: str) -> str:
    return credentials.mask(url)


def _read_part(url: str, sql: str, names: list[str], schema: SchemaConfig, source: str,
               first: int) -> pd.DataFrame:
    import sqlalchemy as sa
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            table = pd.read_sql_query(sa.text(sql), conn)
    finally:
        engine.dispose()
    return table_records(table, names, schema, source, first)


def _plan(url: str, select: str) -> tuple[list[str], int]:
    import sqlalchemy as sa
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            names = list(conn.execute(sa.text(f"SELECT * FROM ({select}) AS q LIMIT 0")).keys())
            count = int(conn.execute(sa.text(f"SELECT COUNT(*) FROM ({select}) AS q")).scalar_one())
    except sa.exc.SQLAlchemyError as exc:
        raise UserError(f"{_shown(url)}: query failed ({str(exc.orig or exc).splitlines()[0]}); "
                        "check source.query and the server") from None
    finally:
        engine.dispose()
    return names, count


@register("sql")
def read_sql(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    if not cfg.query:
        raise UserError("source.query: a sql source needs a table name or a SELECT statement")
    select = _select(cfg.query)
    names, count = _plan(cfg.path, select)
    where = f"{_shown(cfg.path)} ({cfg.query})"
    fields = field_names(schema, names, where)
    if count == 0:
        raise UserError(f"{where}: query returned no rows; check source.query")
    source = cfg.query if _NAME.match(cfg.query) else "query"
    if cfg.order_by:
        step = cfg.rows_per_partition
        parts = [delayed(_read_part, pure=True)(
            cfg.path, f"SELECT * FROM ({select}) AS q ORDER BY {cfg.order_by} LIMIT {step} OFFSET {off}",
            fields, schema, source, off + 1) for off in range(0, count, step)]
    else:
        parts = [delayed(_read_part, pure=True)(cfg.path, select, fields, schema, source, 1)]
    records = dd.from_delayed(parts, meta=records_meta(schema.n_fields - 1), verify_meta=False)
    digest = hashlib.sha256(f"{_shown(cfg.path)}\0{select}\0{cfg.order_by}\0{count}".encode()).hexdigest()
    return Ingested(records, [{"path": _shown(cfg.path), "name": source, "bytes": 0, "sha256": digest,
                               "rows": count, "note": "sha256 of URL, query and row count, not of the rows"}])
