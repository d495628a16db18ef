"""Column-group transforms: a registry of frozen dataclasses, fitted with Dask, applied with numpy.

A transform is configured by ``{"kind": "standard", "name": "num", "columns": ["a", "b"], ...}``.
``fit(frame)`` computes its statistics from a Dask DataFrame and returns a fitted copy whose state
is plain JSON (numbers, strings, lists); ``apply(frame)`` maps a pandas DataFrame of raw records
to one float32 or int32 array with one row per record. The same ``apply`` runs inside the Dask
graph (per partition) and at serving time, so both give the same bytes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import dask.dataframe as dd
import numpy as np
import pandas as pd

_REGISTRY: dict[str, type["Transform"]] = {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Transform:
    """Base of all transforms: ``name`` labels the output, ``columns`` are the raw inputs."""

    kind: ClassVar[str] = ""
    name: str
    columns: list[str]
    state: dict[str, Any] | None = None

    def fit(self, frame: dd.DataFrame) -> "Transform":
        """A copy with ``state`` filled from ``frame`` (the train rows)."""
        return dataclasses.replace(self, state=self.fit_state(frame))

    def fit_state(self, frame: dd.DataFrame) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement fit_state")

    def apply(self, frame: pd.DataFrame) -> np.ndarray:
        if self.state is None:
            raise ValueError(f"features.{self.name}: transform is not fitted; call FeatureTransform.fit first")
        return self.transform(frame)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement transform")

    def out_shape(self) -> tuple[int, ...]:
        """Shape of one output row (after fitting)."""
        raise NotImplementedError(f"{type(self).__name__} must implement out_shape")

    out_dtype: ClassVar[str] = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


def register(kind: str):
    """Class decorator: make the transform available as ``{"kind": kind, ...}`` in ``features.groups``."""
    def wrap(cls: type[Transform]) -> type[Transform]:
        if kind in _REGISTRY:
            raise ValueError(f"feature transform {kind!r} is registered twice")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls
    return wrap


def kinds() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build(spec: dict, where: str) -> Transform:
    """The transform for one config entry; ``ValueError`` names ``where`` and says what is wrong."""
    _load_builtin()
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"{where} must be a mapping with a 'kind' key (got {spec!r}); "
                         "e.g. {kind: standard, name: num, columns: [age]}")
    cls = _REGISTRY.get(spec["kind"])
    if cls is None:
        raise ValueError(f"{where}: unknown kind {spec['kind']!r}; choose one of {', '.join(kinds())}")
    params = {k: v for k, v in spec.items() if k != "kind"}
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"{where} ({spec['kind']}): unknown parameter {unknown[0]!r}; "
                         f"accepted: {', '.join(sorted(fields - {'state'}))}")
    try:
        out = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} ({spec['kind']}): {exc}") from None
    check(isinstance(out.columns, list) and out.columns and all(isinstance(c, str) for c in out.columns),
          f"{where} ({spec['kind']}): columns must be a non-empty list of column names (got {out.columns!r})")
    return out


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _load_builtin() -> None:
    from pipeline.transforms import categorical, image, numeric, text, tokenizer  # noqa: F401 - registers built-ins
