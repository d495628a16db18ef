"""Plain text: one record per line, or one per file. Records are ``source, line, raw, text``.

With ``source.labelled`` each record also has a label, and the record table gains ``reason`` and
``label`` (as text; :func:`pipeline.validate.validate_labels` judges it):

- line mode: each line is ``LABEL<delimiter>TEXT``, split at the first ``source.delimiter``; a line
  without the delimiter is ``wrong_field_count``, an empty label is missing (``missing_value``);
- file mode: the label is the name of the file's parent folder (``<label>/<file>.txt``).
"""
from __future__ import annotations

from functools import partial

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed

from pipeline.config import SchemaConfig, SourceConfig
from pipeline.errors import UserError
from pipeline.sources.base import Ingested, register
from pipeline.sources.files import InputFile, resolve
from pipeline.sources.lines import _read, read_lines, split_lines

TEXT_META = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                          "raw": pd.Series(dtype="string"), "text": pd.Series(dtype="string")})
LABELLED_META = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                              "raw": pd.Series(dtype="string"), "reason": pd.Series(dtype="string"),
                              "label": pd.Series(dtype="string"), "text": pd.Series(dtype="string")})


def field_records(table: pd.DataFrame, cfg: SourceConfig, schema: SchemaConfig, source: str, first: int,
                  raw: list[str], reason: list | None = None) -> pd.DataFrame:
    """Text records (``LABELLED_META`` columns) from the ``source.text_field`` column of a table
    (JSON objects, a Parquet row group); the label is the ``source.label_field`` when labelled.

    A record without the text field (or a labelled one without the label field) is
    ``wrong_field_count``; a text that is not a string is ``malformed``.
    """
    n = len(table)
    reason = list(reason) if reason is not None else [None] * n
    texts = table[cfg.text_field] if cfg.text_field in table.columns else pd.Series([None] * n, dtype=object)
    labels = (table[cfg.label_field] if cfg.labelled and cfg.label_field in table.columns
              else pd.Series([None] * n, dtype=object))
    text_out = []
    for i, value in enumerate(texts.astype(object)):
        if reason[i] is None and (value is None or value is pd.NA or (cfg.labelled and labels.iloc[i] is None)):
            reason[i] = "wrong_field_count"
        elif reason[i] is None and not isinstance(value, str):
            reason[i] = "malformed"
        text_out.append(value if isinstance(value, str) else "")
    label = [None if v is None or v is pd.NA else str(v).strip() or None for v in labels.astype(object)]
    frame = _frame(source, np.arange(first, first + n), raw, text_out)
    return _labelled(frame, label, reason)


def check_text_field(cfg: SourceConfig, found: list[str], where: str) -> None:
    """The text field (and the label field of a labelled source) must be among the ``found`` fields."""
    for key in ("text_field", "label_field") if cfg.labelled else ("text_field",):
        if getattr(cfg, key) not in found:
            raise UserError(f"{where}: no field {getattr(cfg, key)!r} (found {found[:8]}); fix source.{key}")


def _frame(source, line, raw: list[str], text: list[str] | None = None) -> pd.DataFrame:
    n = len(raw)
    return pd.DataFrame({"source": pd.array(np.broadcast_to(np.asarray(source, dtype=object), (n,)), dtype="string"),
                         "line": np.asarray(line, dtype="int64"), "raw": pd.array(raw, dtype="string"),
                         "text": pd.array(raw if text is None else text, dtype="string")})


def _labelled(frame: pd.DataFrame, label: list, reason: list) -> pd.DataFrame:
    out = frame.assign(reason=pd.array(reason, dtype="string"), label=pd.array(label, dtype="string"))
    return out[list(LABELLED_META.columns)]


def _per_line(lines: list[str], f: InputFile, first: int) -> pd.DataFrame:
    return _frame(f.name, np.arange(first, first + len(lines)), lines)


def split_label(line: str, delimiter: str) -> tuple[str | None, str, str | None]:
    """``(label, text, reason)`` of a ``LABEL<delimiter>TEXT`` line: ``("pos", "so good", None)``."""
    label, sep, text = line.partition(delimiter)
    if not sep:
        return None, "", "wrong_field_count"
    return label.strip() or None, text, None


def _per_labelled_line(lines: list[str], f: InputFile, first: int, *, delimiter: str) -> pd.DataFrame:
    label, text, reason = zip(*(split_label(ln, delimiter) for ln in lines)) if lines else ((), (), ())
    frame = _frame(f.name, np.arange(first, first + len(lines)), lines, list(text))
    return _labelled(frame, list(label), list(reason))


def _folder_label(f: InputFile) -> str | None:
    parts = f.path.rstrip("/").split("/")
    return parts[-2] or None if len(parts) > 1 else None


def _per_file(files: list[InputFile], labelled: bool = False) -> pd.DataFrame:
    texts = ["\n".join(split_lines(_read(f, 0, None), f, 1)) for f in files]
    frame = _frame(np.array([f.name for f in files], dtype=object), np.ones(len(files)), texts)
    if not labelled:
        return frame
    return _labelled(frame, [_folder_label(f) for f in files], [None] * len(files))


def _labelled_names(files: list[InputFile]) -> list[InputFile]:
    """Files named ``<label>/<file>`` (their folder is their label), like the images source."""
    return [InputFile(f.fs, f.path, "/".join(f.path.split("/")[-2:]), f.size) for f in files]


@register("text")
def read_text(cfg: SourceConfig, schema: SchemaConfig) -> Ingested:
    files = resolve(cfg.path)
    meta = LABELLED_META if cfg.labelled else TEXT_META
    if cfg.text_mode == "line":
        parse = partial(_per_labelled_line, delimiter=cfg.delimiter) if cfg.labelled else _per_line
        records = read_lines(files, cfg.blocksize, parse, meta)
    else:
        files = _labelled_names(files) if cfg.labelled else files
        step = cfg.rows_per_partition
        parts = [delayed(_per_file, pure=True)(files[i:i + step], cfg.labelled) for i in range(0, len(files), step)]
        records = dd.from_delayed(parts, meta=meta, verify_meta=False)
    return Ingested(records, [f.describe(text=True) for f in files])
