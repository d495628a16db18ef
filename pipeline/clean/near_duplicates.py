"""Near-duplicate text records: MinHash signatures, LSH bands shuffled by key, clusters by union-find.

A Dask stage in four steps, none of which depends on the number of workers:

1. per partition, each record's character ``ngram`` shingles get a datasketch ``MinHash``
   (``num_perm`` permutations, seed 1) and its signature is cut into ``b`` bands of ``r`` rows,
   ``(b, r)`` being what ``datasketch.MinHashLSH`` picks for ``threshold`` and ``num_perm``
   (9 x 13 at 0.8 and 128). Each band gives one 64-bit bucket key (BLAKE2b of band number and values);
2. the (bucket, record id) rows are shuffled by bucket across partitions; records that share a
   bucket are candidate pairs;
3. one small task takes the candidate pairs and the signatures of the records in them, keeps the
   pairs whose estimated Jaccard similarity (the share of equal signature values) is at least
   ``threshold``, and joins them into clusters with union-find;
4. every partition then sends its records that are not their cluster's smallest record id
   ``(source, line)`` to the quarantine with reason ``near_duplicate`` and ``duplicate_of`` =
   ``source:line`` of the kept record: raising the threshold and preparing again gets them back.

A bucket of more than ``MAX_BUCKET`` records (a boilerplate text seen everywhere) gives the pairs of
its smallest record with every other one instead of all pairs.

:func:`reference_clusters` is the same computation in one process with ``datasketch.MinHashLSH``'s
own index and queries: the benchmark and the tests check that both find the same clusters.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.config import NearDuplicatePolicy

if TYPE_CHECKING:
    from datasketch import MinHash
from pipeline.partitions import gather, per_partition
from pipeline.validate import quarantine_records

SEED = 1
MAX_BUCKET = 64
REASON = "near_duplicate"

SIG_META = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                         "sig": pd.Series(dtype=object)})
BAND_META = pd.DataFrame({"bucket": pd.Series(dtype="uint64"), "source": pd.Series(dtype="string"),
                          "line": pd.Series(dtype="int64")})
PAIR_META = pd.DataFrame({"a_source": pd.Series(dtype="string"), "a_line": pd.Series(dtype="int64"),
                          "b_source": pd.Series(dtype="string"), "b_line": pd.Series(dtype="int64")})
DROP_META = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                          "duplicate_of": pd.Series(dtype="string")})


def shingles(text: str, n: int) -> set[bytes]:
    """Character ``n``-grams of ``text`` (the whole text when shorter): ``shingles("abcd", 3) == {b"abc", b"bcd"}``."""
    data = text.encode("utf-8")
    if len(text) <= n:
        return {data} if text else set()
    return {text[i:i + n].encode("utf-8") for i in range(len(text) - n + 1)}


def minhash(text: str, policy: NearDuplicatePolicy) -> MinHash:
    """The datasketch MinHash of one cleaned text's shingles."""
    from datasketch import MinHash   # imported by the text path only: 0.14 s of every `dcpipe` start otherwise
    m = MinHash(num_perm=policy.num_perm, seed=SEED)
    m.update_batch(sorted(shingles(text, policy.ngram)))
    return m


def signature(text: str, policy: NearDuplicatePolicy) -> np.ndarray:
    """The MinHash signature (``num_perm`` uint64 values) of one cleaned text."""
    return minhash(text, policy).hashvalues.astype(np.uint64)


@lru_cache(maxsize=32)
def bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(b, r)``: bands and rows per band, as ``datasketch.MinHashLSH`` chooses them.

    >>> bands(0.8, 128)
    (9, 13)
    """
    from datasketch import MinHashLSH
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def bucket_keys(sig: np.ndarray, b: int, r: int) -> list[int]:
    """One 64-bit key per band: records share a key when they share that band's values."""
    return [int.from_bytes(hashlib.blake2b(i.to_bytes(2, "little") + sig[i * r:(i + 1) * r].tobytes(),
                                           digest_size=8).digest(), "little") for i in range(b)]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


def _signatures(frame: pd.DataFrame, policy: NearDuplicatePolicy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(source, line, signature bytes) and (bucket, source, line) of one partition."""
    b, r = bands(policy.threshold, policy.num_perm)
    sigs = [signature(t, policy) for t in frame["text"].fillna("")]
    keys = np.asarray([k for s in sigs for k in bucket_keys(s, b, r)], dtype=np.uint64)
    ids = frame[["source", "line"]].reset_index(drop=True)
    band = pd.DataFrame({"bucket": keys, "source": ids["source"].repeat(b).to_numpy(),
                         "line": ids["line"].repeat(b).to_numpy()}).astype({"source": "string"})
    return ids.assign(sig=pd.Series([s.tobytes() for s in sigs], dtype=object)), band


def _pairs(members: list[tuple[str, int]]) -> list[tuple[str, int, str, int]]:
    members = sorted(set(members))
    if len(members) > MAX_BUCKET:
        return [(*members[0], *m) for m in members[1:]]
    return [(*a, *b) for i, a in enumerate(members) for b in members[i + 1:]]


def _bucket_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Candidate pairs (a < b) of the records sharing a bucket, for the buckets of one partition."""
    shared = frame[frame.duplicated("bucket", keep=False)]
    out = []
    for _, group in shared.groupby("bucket", sort=True):
        out.extend(_pairs(list(zip(group["source"].astype(str), group["line"].astype(int)))))
    return _pair_frame(out)


def _pair_frame(rows: list[tuple]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(PAIR_META.columns)) if rows else PAIR_META.copy()
    return table.astype(PAIR_META.dtypes.to_dict())


def _unique_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop_duplicates().sort_values(list(PAIR_META.columns), kind="stable").reset_index(drop=True)


def _same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def _candidate_sigs(frame: pd.DataFrame, pairs: pd.DataFrame) -> tuple[pd.DataFrame]:
    wanted = set(zip(pairs["a_source"], pairs["a_line"])) | set(zip(pairs["b_source"], pairs["b_line"]))
    mine = [(s, ln) in wanted for s, ln in zip(frame["source"], frame["line"])]
    return (frame[np.asarray(mine, dtype=bool)] if len(frame) else frame,)


def clusters(edges, ids) -> dict:
    """Union-find: record id -> the smallest id of its cluster, for the ids on some edge.

    >>> clusters([(("a", 3), ("a", 1)), (("a", 1), ("b", 2))], [])
    {('a', 1): ('a', 1), ('a', 3): ('a', 1), ('b', 2): ('a', 1)}
    """
    parent: dict = {i: i for i in ids}

    def root(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)   # the smaller id is the root: it is the kept record
    return {x: root(x) for x in sorted(parent)}


def _resolve(pairs: pd.DataFrame, sigs: pd.DataFrame, policy: NearDuplicatePolicy) -> tuple[pd.DataFrame]:
    """(source, line, duplicate_of) of every record that is not the kept member of its cluster."""
    sig = {(s, int(ln)): np.frombuffer(v, dtype=np.uint64)
           for s, ln, v in zip(sigs["source"], sigs["line"], sigs["sig"])}
    edges = [((a, int(al)), (b, int(bl))) for a, al, b, bl in pairs.itertuples(index=False)
             if estimated_jaccard(sig[(a, int(al))], sig[(b, int(bl))]) >= policy.threshold]
    kept = clusters(edges, [])
    drop = [(s, ln, f"{k[0]}:{k[1]}") for (s, ln), k in kept.items() if (s, ln) != k]
    table = pd.DataFrame(drop, columns=list(DROP_META.columns)) if drop else DROP_META.copy()
    return (table.astype(DROP_META.dtypes.to_dict()),)


def _split(frame: pd.DataFrame, drops: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept records, quarantined near-duplicates with ``duplicate_of``) of one partition."""
    index = pd.MultiIndex.from_arrays([drops["source"].astype(object), drops["line"]])
    mine = pd.MultiIndex.from_arrays([frame["source"].astype(object), frame["line"]])
    flags = mine.isin(index) if len(index) else np.zeros(len(frame), dtype=bool)
    of = dict(zip(zip(drops["source"], drops["line"]), drops["duplicate_of"]))
    dups = frame[flags]
    q = quarantine_records(dups, REASON)
    q = q.assign(duplicate_of=pd.array([of[k] for k in zip(dups["source"], dups["line"])], dtype="string"))
    return frame[~flags], q


def quarantine_meta() -> pd.DataFrame:
    meta = pd.DataFrame({"source": pd.Series(dtype="string"), "line": pd.Series(dtype="int64"),
                         "raw": pd.Series(dtype="string"), "reason": pd.Series(dtype="string")})
    return meta.assign(duplicate_of=pd.Series(dtype="string"))


def drop_near_duplicates(rows: dd.DataFrame, policy: NearDuplicatePolicy):
    """(rows without near-duplicates, their quarantine, lazy count of clusters); lazy.

    ``rows`` are cleaned text records with ``source``, ``line``, ``raw`` and ``text``.
    """
    sigs, band = per_partition(rows, _signatures, (SIG_META, BAND_META), policy, name="neardup-minhash")
    shuffled = band.shuffle(on="bucket", npartitions=rows.npartitions)
    pairs = shuffled.map_partitions(_bucket_pairs, meta=PAIR_META, token="neardup-pairs")
    pairs = gather(pairs, _unique_pairs, _unique_pairs, PAIR_META, name="neardup-candidates")
    (wanted,) = per_partition(sigs, _candidate_sigs, (SIG_META,), pairs, name="neardup-candidate-sigs")
    wanted = gather(wanted, _same, _same, SIG_META, name="neardup-gather-sigs")
    (drops,) = per_partition(pairs, _resolve, (DROP_META,), wanted, policy, name="neardup-resolve")
    kept, quarantine = per_partition(rows, _split, (rows._meta, quarantine_meta()), drops, name="neardup-split")
    return kept, quarantine, drops["duplicate_of"].nunique()


def reference_clusters(records: list[tuple[str, int, str]], policy: NearDuplicatePolicy) -> dict:
    """The same clusters in one process with ``datasketch.MinHashLSH``: {dropped id: kept id}.

    ``records`` are ``(source, line, cleaned text)``. The benchmark's baseline.
    """
    from datasketch import MinHashLSH
    lsh = MinHashLSH(threshold=policy.threshold, num_perm=policy.num_perm)
    hashes, edges = {}, []
    for source, line, text in records:
        m = minhash(text, policy)
        key = (source, int(line))
        for other in lsh.query(m):
            if m.jaccard(hashes[other]) >= policy.threshold:
                edges.append((key, other))
        lsh.insert(key, m, check_duplication=False)
        hashes[key] = m
    return {x: k for x, k in clusters(edges, []).items() if x != k}
