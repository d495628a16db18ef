"""Text columns: a tokeniser, a vocabulary built by a Dask reduction, and three encodings.

- ``sequence``: token ids padded/truncated to ``length`` (0 = padding, 1 = unknown word);
- ``hashing``: bag of words hashed into ``n_features`` counts (stateless, no vocabulary);
- ``tfidf``: term frequency x smoothed inverse document frequency over the vocabulary, L2-normalised.
"""
from __future__ import annotations

import dataclasses
import re
import zlib

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.transforms.base import Transform, check, register

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"\w+")


def tokenize(text) -> list[str]:
    """Lower-cased word tokens: ``tokenize("A good, GOOD film") == ["a", "good", "good", "film"]``."""
    return _WORD.findall(str(text).lower()) if isinstance(text, str) else []


def _token_lists(col: pd.Series) -> pd.Series:
    return col.map(tokenize).astype(object)


def _counts(col: dd.Series, per_document: bool) -> pd.Series:
    """Token -> number of occurrences (or of documents holding it), by a Dask reduction."""
    unique = (lambda toks: sorted(set(toks))) if per_document else (lambda toks: toks)
    tokens = col.map_partitions(lambda s: _token_lists(s).map(unique).explode().dropna(),
                                meta=(col.name, object))
    return tokens.value_counts().compute()


def _vocabulary(counts: pd.Series, min_frequency: int, max_size: int | None, reserved: list[str]) -> list[str]:
    table = pd.DataFrame({"w": counts.index.astype(str), "n": counts.to_numpy()})
    table = table[table["n"] >= min_frequency].sort_values(["n", "w"], ascending=[False, True], kind="stable")
    words = table["w"].tolist()
    return reserved + words[:None if max_size is None else max(0, max_size - len(reserved))]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Text(Transform):
    min_frequency: int = 1
    max_size: int | None = 20000

    def __post_init__(self):
        check(len(self.columns) == 1, f"a text transform reads one column (got {self.columns!r})")
        check(isinstance(self.min_frequency, int) and self.min_frequency >= 1,
              f"min_frequency must be an int >= 1 (got {self.min_frequency!r})")
        check(self.max_size is None or self.max_size >= 3, f"max_size must be >= 3 or null (got {self.max_size!r})")

    @property
    def column(self) -> str:
        return self.columns[0]


@register("sequence")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Sequence(_Text):
    """Fixed-length int32 token ids; ``max_size`` counts the two reserved ids."""

    length: int = 64
    out_dtype = "int32"

    def __post_init__(self):
        super().__post_init__()
        check(self.length >= 1, f"length must be >= 1 (got {self.length})")

    def fit_state(self, frame):
        counts = _counts(frame[self.column], per_document=False)
        return {"vocabulary": _vocabulary(counts, self.min_frequency, self.max_size, [PAD, UNK])}

    def transform(self, frame):
        index = {w: i for i, w in enumerate(self.state["vocabulary"])}
        out = np.zeros((len(frame), self.length), dtype="int32")
        for row, toks in enumerate(_token_lists(frame[self.column])):
            ids = [index.get(t, 1) for t in toks[:self.length]]
            out[row, :len(ids)] = ids
        return out

    def out_shape(self):
        return (self.length,)


@register("tfidf")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TfIdf(_Text):
    """``min_frequency`` and ``max_size`` count documents; idf = ln((1 + n) / (1 + df)) + 1."""

    def fit_state(self, frame):
        col = frame[self.column]
        df = _counts(col, per_document=True)
        words = _vocabulary(df, self.min_frequency, self.max_size, [])
        n_docs = int(col.shape[0].compute())
        idf = [float(np.log((1 + n_docs) / (1 + df[w])) + 1) for w in words]
        return {"vocabulary": words, "idf": idf}

    def transform(self, frame):
        index = {w: i for i, w in enumerate(self.state["vocabulary"])}
        out = np.zeros((len(frame), len(index)), dtype="float64")
        for row, toks in enumerate(_token_lists(frame[self.column])):
            for t in toks:
                if t in index:
                    out[row, index[t]] += 1
        out *= np.asarray(self.state["idf"])
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norm > 0, norm, 1)).astype("float32")

    def out_shape(self):
        return (len(self.state["vocabulary"]),)


@register("hashing")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Hashing(_Text):
    """Counts of crc32(token) mod ``n_features``: no vocabulary to fit or store."""

    n_features: int = 1024

    def __post_init__(self):
        super().__post_init__()
        check(self.n_features >= 1, f"n_features must be >= 1 (got {self.n_features})")

    def fit_state(self, frame):
        return {}

    def transform(self, frame):
        out = np.zeros((len(frame), self.n_features), dtype="float32")
        for row, toks in enumerate(_token_lists(frame[self.column])):
            for t in toks:
                out[row, zlib.crc32(t.encode()) % self.n_features] += 1
        return out

    def out_shape(self):
        return (self.n_features,)
