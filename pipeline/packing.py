"""Packing: each split's documents as one token stream, cut into fixed-length int32 sequences.

Every document's subword ids (``pipeline.transforms.tokenizer.Packed``) are followed by ``<eod>``
(id 2); the documents of a split are concatenated in stored order (by split, then row hash, see
:mod:`pipeline.features`) and cut every ``length`` tokens; the last sequence of a split is padded
with ``<pad>`` (0). The dataset has, over (sample, position):

    tokens   int32  token ids
    segment  int32  1, 2, ... for the documents within the sequence in order, 0 on padding: attention
                    is masked per document where ``segment[i] != segment[j]``; a document cut by a
                    sequence boundary goes on as segment 1 of the next sequence

and ``split`` (int8) over sample. Sequences never mix splits. Each partition's ids are computed in
one task per partition, their counts learnt once, and the stream is assembled as Dask arrays, so
the bytes depend on the data and the configuration, never on the workers.

>>> ids, docs = stream([[5, 6], [7]], 0)
>>> ids.tolist(), docs.tolist()
([5, 6, 2, 7, 2], [0, 0, 0, 1, 1])
>>> cut(np.array([5, 6, 2, 7, 2]), np.array([0, 0, 0, 1, 1]), 4)[1].tolist()
[[1, 1, 1, 2], [2, 0, 0, 0]]
"""
from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.transforms.tokenizer import EOD, PAD

SPLITS = ("train", "val", "test")


def stream(docs: list[list[int]], first_doc: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids with ``<eod>`` after each document, the document number of each id)."""
    lengths = np.fromiter((len(d) + 1 for d in docs), dtype=np.int64, count=len(docs))
    ids = np.full(int(lengths.sum()), EOD, dtype=np.int32)
    ends = np.cumsum(lengths)
    for doc, end in zip(docs, ends):
        ids[end - 1 - len(doc):end - 1] = doc
    return ids, np.repeat(np.arange(first_doc, first_doc + len(docs), dtype=np.int64), lengths)


def segments(doc: np.ndarray) -> np.ndarray:
    """Per-sequence document numbers (1-based) from global ones, 0 where ``doc`` is -1 (padding)."""
    return np.where(doc >= 0, doc - doc[:, :1] + 1, 0).astype(np.int32)


def cut(ids: np.ndarray, doc: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, segment) of ``length`` positions from one split's stream (numpy; the reference)."""
    n = -(-len(ids) // length)
    pad = n * length - len(ids)
    tokens = np.concatenate([ids, np.full(pad, PAD, dtype=np.int32)]).reshape(n, length)
    docs = np.concatenate([doc, np.full(pad, -1, dtype=np.int64)]).reshape(n, length)
    return tokens, segments(docs)


def _partition_stream(frame: pd.DataFrame, transform, first_doc: int) -> tuple:
    """(ids, document numbers, tokens per split) of one partition of the split table."""
    encoded = transform.encode(frame[transform.columns[0]].tolist())
    ids, docs = stream(encoded, first_doc)
    weights = np.fromiter((len(d) + 1 for d in encoded), dtype=np.int64, count=len(encoded))
    split = frame["split"].to_numpy().astype(np.int64)
    return ids, docs, np.bincount(split, weights=weights, minlength=len(SPLITS)).astype(np.int64)


def _pick(parts: tuple, i: int):
    return parts[i]


def _padded(x: da.Array, pad: int, value) -> da.Array:
    return da.concatenate([x, da.full(pad, value, dtype=x.dtype, chunks=max(pad, 1))]) if pad else x


def _split_arrays(ids: da.Array, docs: da.Array, length: int, rows_per_chunk: int):
    n = -(-ids.shape[0] // length)
    pad = n * length - ids.shape[0]
    step = length * max(1, rows_per_chunk)
    ids = _padded(ids, pad, PAD).rechunk(step).reshape(n, length)
    docs = _padded(docs, pad, -1).rechunk(step).reshape(n, length)
    return ids, docs.map_blocks(segments, dtype=np.int32), n


def packed_dataset(rows, lengths: tuple[int, ...], transform, rows_per_chunk: int = 4096):
    """(the packed ``xr.Dataset``, sequences per split, documents per split) of the split table ``rows``.

    ``rows`` are persisted with known partition ``lengths`` and a ``split`` column, ordered by split;
    ``transform`` is the fitted ``Packed`` transform. Counts the tokens per partition once (one
    task per partition, kept for the write).
    """
    firsts = np.r_[0, np.cumsum(lengths)[:-1]]
    parts = [dask.delayed(_partition_stream, pure=True)(p, transform, int(f))
             for p, f in zip(rows.to_delayed(), firsts)]
    parts = dask.persist(*parts)
    per_split = np.asarray(dask.compute(*[dask.delayed(_pick)(p, 2) for p in parts]), dtype=np.int64)
    per_split = per_split.reshape(len(parts), len(SPLITS))
    n_tokens = per_split.sum(axis=1)
    ids = da.concatenate([da.from_delayed(dask.delayed(_pick)(p, 0), (int(n),), dtype=np.int32)
                          for p, n in zip(parts, n_tokens)])
    docs = da.concatenate([da.from_delayed(dask.delayed(_pick)(p, 1), (int(n),), dtype=np.int64)
                           for p, n in zip(parts, n_tokens)])
    bounds = np.r_[0, np.cumsum(per_split.sum(axis=0))]
    tokens, segment, split, counts = [], [], [], {}
    for s, name in enumerate(SPLITS):
        t, g, n = _split_arrays(ids[bounds[s]:bounds[s + 1]], docs[bounds[s]:bounds[s + 1]], transform.length,
                                rows_per_chunk)
        tokens.append(t)
        segment.append(g)
        split.append(da.full(n, s, dtype=np.int8, chunks=max(n, 1)))
        counts[name] = n
    ds = xr.Dataset({
        "tokens": (("sample", "position"), da.concatenate(tokens), {"pad_id": PAD, "eod_id": EOD}),
        "segment": (("sample", "position"), da.concatenate(segment),
                    {"description": "document number within the sequence from 1; 0 = padding"}),
        "split": ("sample", da.concatenate(split), {"flag_values": [0, 1, 2], "flag_meanings": " ".join(SPLITS)}),
    })
    return ds, counts, {"tokens": {n: int(v) for n, v in zip(SPLITS, per_split.sum(axis=0))}}
