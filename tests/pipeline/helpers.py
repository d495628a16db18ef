"""Tiny schemas and tables shared by the source, validate and clean tests."""
from __future__ import annotations

import pandas as pd

from pipeline.config import JobConfig, SchemaConfig, SourceConfig

COLUMNS = ["a", "b", "c", "d", "label"]


def tiny_schema(**fields) -> SchemaConfig:
    """Four values in [0, 10] then the label (0 or 1): a 2x2 grey 'image'."""
    base = dict(n_fields=5, columns=COLUMNS, label_column="label", labels=[0, 1], value_min=0,
                value_max=10, image_shape=(2, 2, 1))
    return SchemaConfig(**{**base, **fields})


def source(path, kind="csv", **fields) -> SourceConfig:
    return SourceConfig(kind=kind, path=str(path), **fields)


def tiny_table() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3, 4], "b": [0, 0, 5, 5], "c": [9, 8, 7, 6], "d": [1, 1, 1, 1],
                         "label": [0, 1, 0, 1]})


def collect(ingested) -> pd.DataFrame:
    """The records of an ``Ingested``, computed in this process, in source order."""
    return ingested.records.compute(scheduler="sync").reset_index(drop=True)


def values(frame: pd.DataFrame) -> list[list[float]]:
    return frame[[c for c in frame.columns if c.startswith("v")]].to_numpy().tolist()


def tiny_job(path, **sections) -> JobConfig:
    base = {"source": {"path": str(path)}, "schema": tiny_schema().model_dump(),
            "store": {"chunk_rows": 4}, "augment": {"copies": 0},
            "cluster": {"workers": 2, "dashboard_address": ":0"}}
    for name, fields in sections.items():
        base[name] = {**base.get(name, {}), **fields}
    return JobConfig.model_validate(base)
