"""Categorical columns: ordinal codes or one-hot, with code 0 kept for categories not seen in train."""
from __future__ import annotations

import dataclasses

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.transforms.base import Transform, check, register

UNSEEN = "<unseen>"


def _as_text(col: pd.Series) -> pd.Series:
    return col.astype("string").fillna(UNSEEN)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Categorical(Transform):
    """Categories seen at least ``min_frequency`` times in train, most frequent ``max_categories``."""

    min_frequency: int = 1
    max_categories: int | None = None

    def __post_init__(self):
        check(isinstance(self.min_frequency, int) and self.min_frequency >= 1,
              f"min_frequency must be an int >= 1 (got {self.min_frequency!r})")
        check(self.max_categories is None or self.max_categories >= 1,
              f"max_categories must be >= 1 or null (got {self.max_categories!r})")

    def fit_state(self, frame: dd.DataFrame) -> dict:
        counts = dask.compute(*[frame[c].map_partitions(_as_text, meta=(c, "string")).value_counts()
                                for c in self.columns])
        return {"categories": {c: _keep(n, self.min_frequency, self.max_categories)
                               for c, n in zip(self.columns, counts)}}

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, columns) int32 codes: 0 unseen, 1.. the fitted categories in order."""
        out = np.zeros((len(frame), len(self.columns)), dtype="int32")
        for j, c in enumerate(self.columns):
            index = pd.Index(self.state["categories"][c])
            out[:, j] = index.get_indexer(_as_text(frame[c])) + 1  # -1 (unseen) -> 0
        return out


def _keep(counts: pd.Series, min_frequency: int, max_categories: int | None) -> list[str]:
    """Frequent categories, most frequent first, ties by name: a deterministic order."""
    table = pd.DataFrame({"cat": counts.index.astype(str), "n": counts.to_numpy()})
    table = table[(table["n"] >= min_frequency) & (table["cat"] != UNSEEN)]
    table = table.sort_values(["n", "cat"], ascending=[False, True], kind="stable")
    return table["cat"].tolist()[:max_categories]


@register("ordinal")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Ordinal(_Categorical):
    out_dtype = "int32"

    def transform(self, frame):
        return self.codes(frame)

    def out_shape(self):
        return (len(self.columns),)


@register("onehot")
@dataclasses.dataclass(frozen=True, kw_only=True)
class OneHot(_Categorical):
    """Per column ``1 + len(categories)`` indicators; the first is the unseen bucket."""

    def transform(self, frame):
        codes = self.codes(frame)
        blocks = [np.eye(1 + len(self.state["categories"][c]), dtype="float32")[codes[:, j]]
                  for j, c in enumerate(self.columns)]
        return np.concatenate(blocks, axis=1)

    def out_shape(self):
        return (sum(1 + len(v) for v in self.state["categories"].values()),)
