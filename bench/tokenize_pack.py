"""Benchmark tokenize + pack: dcpipe's Dask stage on 2 workers vs the ``tokenizers`` library in one process.

    python docs/examples/fortunes/build.py          # the texts: the fortunes pretraining corpus
    PYTHONPATH=. nice -n 19 .venv/bin/python bench/tokenize_pack.py [--copies 8] [--repeats 3] [--workers 2]

Texts: the ``text`` of ``docs/examples/fortunes/corpus.jsonl``, ``--copies`` times over (the same
documents again: tokenizing them costs the same), the first 80% marked train, the next 10% val, the
rest test, in that order. One BPE tokenizer (vocab 4000, dcpipe's reserved ids) is trained on the
first copy before any timing; both sides use that tokenizer's JSON:

* Dask: ``pipeline.packing.packed_dataset`` (one ``Packed.encode`` task per partition, the counts,
  the stream assembled and cut as Dask arrays) over ``--partitions`` partitions already persisted on
  a LocalCluster of ``--workers`` processes x 1 thread, then ``tokens`` and ``segment`` gathered to
  the client (cluster start-up and the persist of the texts not timed; the store would write the
  arrays instead of gathering them);
* one process: ``Tokenizer.encode_batch`` over all texts, then a numpy pack written here (ids and
  ``<eod>`` concatenated per split, cut every ``--length`` tokens, padded with 0, segments from the
  document numbers), not dcpipe's code.

``encode_batch`` uses the Rust thread pool (one thread per core) on both sides: in one process, and
inside each Dask worker. Runs alternate (one process, Dask, ...); each run checks that both give the
same ``tokens`` and ``segment`` arrays. Prints a Markdown table with the load average.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

from pipeline.packing import packed_dataset
from pipeline.transforms.tokenizer import EOD, PAD, Packed, train_tokenizer

CORPUS = Path(__file__).resolve().parents[1] / "docs" / "examples" / "fortunes" / "corpus.jsonl"


def texts_of(path: Path, copies: int) -> list[str]:
    if not path.exists():
        raise SystemExit(f"{path}: not found; build it with `python docs/examples/fortunes/build.py`")
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines()]
    return texts * copies


def split_codes(n: int) -> np.ndarray:
    """0 for the first 80% of rows, 1 for the next 10%, 2 for the rest (already in split order)."""
    cuts = (round(0.8 * n), round(0.9 * n))
    return np.repeat(np.array([0, 1, 2], dtype=np.int8), [cuts[0], cuts[1] - cuts[0], n - cuts[1]])


def pack_one_split(encoded: list[list[int]], first_doc: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, segment) of one split: each document's ids then ``<eod>``, cut into ``length`` rows."""
    sizes = np.fromiter((len(e) + 1 for e in encoded), dtype=np.int64, count=len(encoded))
    ids = np.fromiter(itertools.chain.from_iterable(e + [EOD] for e in encoded), dtype=np.int32,
                      count=int(sizes.sum()))
    doc = np.repeat(np.arange(first_doc, first_doc + len(encoded)), sizes)
    pad = -len(ids) % length
    ids = np.concatenate([ids, np.full(pad, PAD, np.int32)]).reshape(-1, length)
    doc = np.concatenate([doc, np.full(pad, -1)]).reshape(-1, length)
    return ids, np.where(doc >= 0, doc - doc[:, :1] + 1, 0).astype(np.int32)


def run_single(texts: list[str], split: np.ndarray, tokenizer_json: str, length: int):
    from tokenizers import Tokenizer
    start = time.perf_counter()
    tokenizer = Tokenizer.from_str(tokenizer_json)
    encoded = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    bounds = np.r_[0, np.cumsum(np.bincount(split, minlength=3))]
    packs = [pack_one_split(encoded[a:b], int(a), length) for a, b in zip(bounds[:-1], bounds[1:])]
    tokens, segment = (np.concatenate([p[i] for p in packs]) for i in (0, 1))
    n_ids = sum(len(e) + 1 for e in encoded)
    return time.perf_counter() - start, tokens, segment, n_ids


def run_dask(rows: dd.DataFrame, lengths: tuple[int, ...], transform: Packed, client: Client):
    start = time.perf_counter()
    ds, _, counts = packed_dataset(rows, lengths, transform, rows_per_chunk=4096)
    tokens, segment = client.compute([ds["tokens"].data, ds["segment"].data], sync=True)
    return time.perf_counter() - start, tokens, segment, sum(counts["tokens"].values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--length", type=int, default=64)
    args = ap.parse_args()
    texts = texts_of(args.corpus, args.copies)
    split = split_codes(len(texts))
    spec = Packed(name="tokens", columns=["text"], length=args.length, vocab_size=4000, min_frequency=2)
    transform = spec.with_tokenizer(train_tokenizer(texts[:len(texts) // args.copies], spec))
    frame = pd.DataFrame({"text": pd.array(texts, dtype="string"), "split": split})
    load0 = os.getloadavg()[0]
    rows = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        parts = client.persist(dd.from_pandas(frame, npartitions=args.partitions, sort=False))
        lengths = tuple(int(n) for n in parts.map_partitions(len).compute())
        small = client.persist(dd.from_pandas(frame.head(500), npartitions=2, sort=False))
        run_dask(small, tuple(int(n) for n in small.map_partitions(len).compute()), transform, client)   # warm
        run_single(texts[:500], split[:500], transform.state["tokenizer"], args.length)
        for r in range(args.repeats):
            t1, tok1, seg1, n1 = run_single(texts, split, transform.state["tokenizer"], args.length)
            t2, tok2, seg2, n2 = run_dask(parts, lengths, transform, client)
            same = n1 == n2 and np.array_equal(tok1, tok2) and np.array_equal(seg1, seg2)
            rows.append((r, n1, t1, t2, same, tok1.shape[0]))
    print(f"tokenize + pack, {len(texts):,} documents ({args.copies} copies of {args.corpus.name}), "
          f"{rows[0][1]:,} ids with <eod>, length {args.length}, {args.partitions} partitions; "
          f"{platform.node()}, {os.cpu_count()} cores, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"\n| run | one process tokens/s | Dask x{args.workers} tokens/s | ratio | same output | sequences |")
    print("|---|---|---|---|---|---|")
    for r, n, t1, t2, same, seqs in rows:
        print(f"| {r} | {n / t1:,.0f} | {n / t2:,.0f} | {t1 / t2:.2f} | {same} | {seqs:,} |")
    best1, best2 = min(x[2] for x in rows), min(x[3] for x in rows)
    n = rows[0][1]
    print(f"\nbest of {args.repeats}: one process {n / best1:,.0f} tokens/s, Dask {n / best2:,.0f} tokens/s, "
          f"ratio {best1 / best2:.2f}")


if __name__ == "__main__":
    main()
