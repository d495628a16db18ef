"""Benchmark near-duplicate detection: the Dask stage on 2 workers vs one datasketch loop.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/neardup.py [--docs 4000] [--repeats 2] [--workers 2]

The corpus is made here (no download): ``--docs`` random documents of 60-100 words over a
230-word vocabulary, then one planted near-copy (a letter added to one word: estimated Jaccard
about 0.95 on character 5-grams) of every 10th document. Both sides get the same cleaned texts:

* single process: ``pipeline.clean.near_duplicates.reference_clusters``: for each document a
  datasketch ``MinHash``, ``MinHashLSH.query`` then ``insert``, candidate pairs verified by
  ``MinHash.jaccard``, union-find;
* Dask: ``drop_near_duplicates`` over ``--partitions`` partitions on a real LocalCluster of
  ``--workers`` processes (one thread each), computing the kept rows, the quarantine and the
  cluster count (cluster start-up not timed).

Runs alternate (single, Dask, single, Dask, ...) so both see the same machine load; each run's
clusters are compared ({dropped id: kept id}) and the precision and recall of the planted copies
reported. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import time
from datetime import datetime, timezone

import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster

from pipeline.clean.near_duplicates import drop_near_duplicates, reference_clusters
from pipeline.clean.text import clean_one
from pipeline.config import NearDuplicatePolicy, TextPolicy

SYLLABLES = "ka lo mi ru se ta vo ne pi da fu go be ri zo".split()
WORDS = [a + b for a in SYLLABLES for b in SYLLABLES] + "the of and to with that have be".split()


def corpus(n: int, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    rng = random.Random(seed)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 100))) for _ in range(n)]
    planted = {}
    for i in range(0, n, 10):
        words = docs[i].split()
        words[rng.randrange(len(words))] += "s"
        docs.append(" ".join(words))
        planted[("corpus.txt", len(docs))] = ("corpus.txt", i + 1)
    texts = [clean_one(d, TextPolicy())[0] for d in docs]
    frame = pd.DataFrame({"source": pd.array(["corpus.txt"] * len(texts), dtype="string"),
                          "line": range(1, len(texts) + 1), "raw": pd.array(docs, dtype="string"),
                          "text": pd.array(texts, dtype="string")})
    return frame, planted


def run_single(frame: pd.DataFrame, policy: NearDuplicatePolicy) -> tuple[float, dict]:
    start = time.perf_counter()
    found = reference_clusters(list(zip(frame["source"], frame["line"], frame["text"])), policy)
    return time.perf_counter() - start, found


def run_dask(frame: pd.DataFrame, policy: NearDuplicatePolicy, client: Client, partitions: int) -> tuple[float, dict]:
    start = time.perf_counter()
    rows = dd.from_pandas(frame, npartitions=partitions, sort=False)
    kept, quarantine, n_clusters = drop_near_duplicates(rows, policy)
    _, q, _ = client.compute([kept, quarantine, n_clusters], sync=True)
    seconds = time.perf_counter() - start
    found = {(s, int(ln)): (of.rsplit(":", 1)[0], int(of.rsplit(":", 1)[1]))
             for s, ln, of in zip(q["source"], q["line"], q["duplicate_of"])}
    return seconds, found


def precision_recall(found: dict, planted: dict) -> tuple[float, float]:
    hits = sum(1 for k, v in found.items() if planted.get(k) == v)
    return hits / max(1, len(found)), hits / max(1, len(planted))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args()
    policy = NearDuplicatePolicy()
    frame, planted = corpus(args.docs)
    n = len(frame)
    rows = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        run_dask(frame.head(200), policy, client, args.partitions)          # warm the workers' imports
        for r in range(args.repeats):
            t1, single = run_single(frame, policy)
            t2, dask_found = run_dask(frame, policy, client, args.partitions)
            rows.append((r, t1, t2, single == dask_found, precision_recall(dask_found, planted), len(dask_found)))
    print(f"near-duplicates, {n} documents ({len(planted)} planted copies), threshold {policy.threshold}, "
          f"num_perm {policy.num_perm}, ngram {policy.ngram}; {platform.node()}, {os.cpu_count()} cores, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}")
    print("\n| run | single process docs/s | Dask x%d docs/s | ratio | same clusters | clusters | precision | recall |"
          % args.workers)
    print("|---|---|---|---|---|---|---|---|")
    for r, t1, t2, same, (p, rc), k in rows:
        print(f"| {r} | {n / t1:,.0f} | {n / t2:,.0f} | {t1 / t2:.2f} | {same} | {k} | {p:.3f} | {rc:.3f} |")
    best1, best2 = min(x[1] for x in rows), min(x[2] for x in rows)
    print(f"\nbest of {args.repeats}: single {n / best1:,.0f} docs/s, Dask {n / best2:,.0f} docs/s, "
          f"ratio {best1 / best2:.2f}")


if __name__ == "__main__":
    main()
