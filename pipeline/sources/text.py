"""Plain text: one record per line, or one per file. Records are ``source, line, raw, text``.

Text records feed the text cleaning steps (:mod:`pipeline.clean.text`); they have no numeric
fields, so ``dcpipe prepare`` (which stores image/value tables) does not take them.
"""
from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.sources.base import Ingested, register
from pipeline.sources.files import InputFile, resolve
from pipeline.sources.lines import _read, read_lines, split_lines

TEXT_META = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                          "raw": pd.Series(dtype="string"), "text": pd.Series(dtype="string")})


def _frame(source, line, raw: list[str]) -> pd.DataFrame:
    n = len(raw)
    return pd.DataFrame({"source": pd.array(np.broadcast_to(np.asarray(source, dtype=object), (n,)), dtype="string"),
                         "line": np.asarray(line, dtype="int64"), "raw": pd.array(raw, dtype="string"),
                         "text": pd.array(raw, dtype="string")})


def _per_line(lines: list[str], f: InputFile, first: int) -> pd.DataFrame:
    return _frame(f.name, np.arange(first, first + len(lines)), lines)


def _per_file(files: list[InputFile]) -> pd.DataFrame:
    texts = ["\n".join(split_lines(_read(f, 0, None), f, 1)) for f in files]
    return _frame(np.array([f.name for f in files], dtype=object), np.ones(len(files)), texts)


@register("text")
def read_text(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    files = resolve(cfg.path)
    if cfg.text_mode == "line":
        records = read_lines(files, cfg.blocksize, _per_line, TEXT_META)
    else:
        step = cfg.rows_per_partition
        parts = [delayed(_per_file, pure=True)(files[i:i + step]) for i in range(0, len(files), step)]
        records = dd.from_delayed(parts, meta=TEXT_META, verify_meta=False)
    return Ingested(records, [f.describe(text=True) for f in files])
