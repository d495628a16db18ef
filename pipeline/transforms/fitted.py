"""``FeatureTransform``: every configured column group, fitted on train, as one JSON-able object.

>>> ft = FeatureTransform.fit(rows, cfg.features)               # doctest: +SKIP  (Dask, train rows)
>>> ft.save(version_folder / "features")                         # doctest: +SKIP  (features.json)
>>> FeatureTransform.load(version_folder / "features").transform(pandas_records)  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from pipeline.errors import UserError
from pipeline.transforms.base import Transform, build

FORMAT = "dcpipe-features/1"
FILE = "features.json"
TRAIN = 0  # the ``split`` code of the train rows (pipeline.features.SPLITS)


@dataclasses.dataclass(frozen=True)
class FeatureTransform:
    """Fitted transforms in config order; ``transform`` gives ``{group name: array}``."""

    transforms: tuple[Transform, ...]

    @classmethod
    def fit(cls, frame: dd.DataFrame, cfg, split_column: str = "split") -> "FeatureTransform":
        """Fit every group of ``cfg`` (a ``FeaturesConfig``) on the train rows of ``frame``.

        Rows with ``split_column != 0`` are left out when that column exists, so val/test
        statistics never leak into the fitted state.
        """
        train = frame[frame[split_column] == TRAIN] if split_column in frame.columns else frame
        missing = sorted({c for t in cfg.build() for c in t.columns if "*" not in c} - set(frame.columns))
        if missing:
            raise UserError(f"features.groups: column {missing[0]!r} is not in the data "
                            f"(columns: {', '.join(map(str, frame.columns[:12]))}...)")
        return cls(tuple(t.fit(train) for t in cfg.build()))

    def transform(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Features of raw records (a pandas DataFrame): batch or online inference."""
        return {t.name: t.apply(frame) for t in self.transforms}

    def transform_dask(self, frame: dd.DataFrame, lengths: tuple[int, ...] | None = None) -> dict[str, da.Array]:
        """The same features, lazily: one task per partition in a layer named ``features-<group>-…``.

        ``lengths`` are the partition lengths when known (else the chunks are unknown, ``nan``).
        """
        keys = frame.__dask_keys__()
        chunks = tuple(lengths) if lengths else (np.nan,) * len(keys)
        out = {}
        for t in self.transforms:
            name = f"features-{t.name}-{tokenize(t.to_dict(), frame._name)}"
            shape = t.out_shape()
            zeros = (0,) * len(shape)
            tasks = {(name, i, *zeros): (t.apply, key) for i, key in enumerate(keys)}
            graph = HighLevelGraph.from_collections(name, tasks, dependencies=[frame])
            out[t.name] = da.Array(graph, name, chunks=(chunks, *((n,) for n in shape)), dtype=t.out_dtype)
        return out

    def to_dict(self) -> dict:
        return {"format": FORMAT, "transforms": [t.to_dict() for t in self.transforms]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict, origin: str = "features") -> "FeatureTransform":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UserError(f"{origin}: not a fitted feature transform (expected format {FORMAT!r})")
        try:
            transforms = tuple(build(spec, f"{origin}: transforms[{i}]") for i, spec in enumerate(data["transforms"]))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return cls(transforms)

    @classmethod
    def from_json(cls, text: str, origin: str = "features") -> "FeatureTransform":
        return cls.from_dict(json.loads(text), origin)

    def save(self, folder: str | Path) -> Path:
        """Write ``<folder>/features.json`` and return its path."""
        path = Path(folder) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "FeatureTransform":
        path = Path(folder) / FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise UserError(f"{path}: no fitted features here; fit them with FeatureTransform.fit and save") from None
        try:
            return cls.from_json(text, origin=str(path))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg})") from None
