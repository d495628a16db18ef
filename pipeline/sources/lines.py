"""Text files as lines with exact 1-based line numbers, split into byte blocks for parallelism.

An uncompressed file is cut into ``blocksize`` byte ranges that end at a newline (fsspec's
``read_block``). A cheap task per block counts its lines, a cumulative sum gives each block its
first line number, and the block's parse task then knows the exact number of every line. A
compressed file cannot be split and is one block. Lines end at ``\\n`` (a trailing ``\\r`` is
removed); every line, blank ones included, is a record.
"""
from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Callable

import dask.dataframe as dd
import pandas as pd
from dask import delayed
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import funcname
from fsspec.utils import read_block

from pipeline import sizeof as _sizeof  # noqa: F401 - registers the fast sizeof of wide frames on workers
from pipeline.errors import UserError
from pipeline.sources.files import InputFile

Parse = Callable[[list[str], InputFile, int], pd.DataFrame]  # (lines, file, first line number) -> records


def _blocks(f: InputFile, blocksize: int) -> list[tuple[int, int | None]]:
    if f.compression or f.size <= blocksize:
        return [(0, None)]
    return [(off, blocksize) for off in range(0, f.size, blocksize)]


def _read(f: InputFile, offset: int, length: int | None) -> bytes:
    try:
        if length is None:
            with f.open("rb") as fh:
                return fh.read()
        with f.fs.open(f.path, "rb") as fh:
            return read_block(fh, offset, length, delimiter=b"\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{f.path}: truncated or corrupt {f.compression or ''} file ({exc}); "
                        "copy it again from its origin") from None
    except OSError as exc:
        raise UserError(f"{f.path}: cannot be read ({exc.strerror or exc})") from None


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _count(f: InputFile, offset: int, length: int | None) -> int:
    return count_lines(_read(f, offset, length))


def split_lines(data: bytes, f: InputFile, first_line: int) -> list[str]:
    """Decode UTF-8 (one-line error naming the file and line) and split at ``\\n``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data[:exc.start].count(b"\n")
        raise UserError(f"{f.path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                        "re-encode the file as UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def first_lines(counts: list[int]) -> list[int]:
    """First line number of each block: ``[3, 2, 4] -> [1, 4, 6]``."""
    return [1 + s for s in [0, *itertools.accumulate(counts)][:-1]]


def _parse_block(f: InputFile, offset: int, length: int | None, starts: list[int], index: int,
                 parse: Parse, skip_header: bool) -> pd.DataFrame:
    first = starts[index]
    lines = split_lines(_read(f, offset, length), f, first)
    if index == 0 and not lines:
        raise UserError(f"{f.path}: file is empty (no lines); remove it from source.path")
    if skip_header and index == 0:
        lines, first = lines[1:], first + 1
        if not lines and len(starts) == 1:
            raise UserError(f"{f.path}: has a header but no records; remove it from source.path")
    return parse(lines, f, first)


def read_lines(files: list[InputFile], blocksize: int, parse: Parse, meta: pd.DataFrame,
               skip_header: bool = False) -> dd.DataFrame:
    """Lazy records, one partition per block, built by ``parse`` from each block's lines."""
    parts = []
    for f in files:
        blocks = _blocks(f, blocksize)
        if len(blocks) == 1:
            starts = [1]
        else:
            counts = [delayed(_count, pure=True)(f, off, ln) for off, ln in blocks]
            starts = delayed(first_lines, pure=True)(counts)
        for i, (off, ln) in enumerate(blocks):
            parts.append(_producer(_parse_block, f, off, ln, starts, i, parse, skip_header))
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _producer(func, *args) -> Delayed:
    """``delayed(func, pure=True)(*args)`` whose task is marked a data producer. A block's parse
    depends on the line count of the blocks before it, so Dask's scheduler does not take it for a
    root task by itself (a group that depends on a task of its own name is not root-ish) and
    without the mark sends every block to the workers at once: they read a 2 GB file's blocks
    ahead of the cleaning (2 GB of parsed blocks held per worker). Marked, the blocks are queued and
    handed out as threads come free, each cleaned before the next is read."""
    from dask._task_spec import Task, TaskRef   # dask's task spec (checked with dask 2026.8)
    deps = [a for a in args if isinstance(a, Delayed)]
    key = f"{funcname(func)}-{tokenize(func, *args)}"
    task = Task(key, func, *(TaskRef(a.key) if isinstance(a, Delayed) else a for a in args), _data_producer=True)
    return Delayed(key, HighLevelGraph.from_collections(key, {key: task}, dependencies=deps))
