"""Numeric scaling; state is per-column offsets and scales, fitted on non-missing train values.

Standard and min-max use Dask DataFrame reductions, which skip missing values (one compute for all columns; dask-ml's
scalers would turn a single missing value into a NaN statistic); robust uses dask-ml's
``RobustScaler`` per column on the non-missing values.
"""
from __future__ import annotations

import dataclasses

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.transforms.base import Transform, check, register


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Scaler(Transform):
    """``(x - offset) / scale`` per column; missing values become 0 (the fitted centre)."""

    def _numbers(self, frame: dd.DataFrame) -> dd.DataFrame:
        return frame[self.columns].astype("float64")

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[self.columns].to_numpy(dtype="float64", na_value=np.nan)
        out = (x - np.asarray(self.state["offset"])) / np.asarray(self.state["scale"])
        return np.nan_to_num(out, nan=0.0).astype("float32")

    def out_shape(self):
        return (len(self.columns),)


def _safe(scale: np.ndarray) -> list[float]:
    return [float(s) if s > 0 and np.isfinite(s) else 1.0 for s in scale]


@register("standard")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Standard(_Scaler):
    """Zero mean, unit (population) variance, as scikit-learn's StandardScaler."""

    def fit_state(self, frame):
        x = self._numbers(frame)
        mean, std = dask.compute(x.mean(), x.std(ddof=0))
        return {"offset": [float(v) for v in mean.to_numpy()], "scale": _safe(std.to_numpy())}


@register("minmax")
@dataclasses.dataclass(frozen=True, kw_only=True)
class MinMax(_Scaler):
    """Train minimum to 0, train maximum to 1."""

    def fit_state(self, frame):
        x = self._numbers(frame)
        lo, hi = dask.compute(x.min(), x.max())
        return {"offset": [float(v) for v in lo.to_numpy()], "scale": _safe((hi - lo).to_numpy())}


@register("robust")
@dataclasses.dataclass(frozen=True, kw_only=True)
class Robust(_Scaler):
    """Median to 0, inter-quantile range to 1 (dask_ml.preprocessing.RobustScaler; Dask's
    approximate per-chunk percentiles, so the centre is close to, not exactly, the median)."""

    quantile_range: tuple[float, float] = (25.0, 75.0)

    def __post_init__(self):
        lo, hi = self.quantile_range
        check(0 <= lo < hi <= 100,
              f"quantile_range must satisfy 0 <= low < high <= 100 (got {list(self.quantile_range)})")

    def fit_state(self, frame):
        from dask_ml.preprocessing import RobustScaler
        fits = [RobustScaler(quantile_range=tuple(self.quantile_range)).fit(
                    frame[c].astype("float64").dropna().to_dask_array(lengths=True).reshape(-1, 1))
                for c in self.columns]
        return {"offset": [float(s.center_[0]) for s in fits], "scale": _safe([s.scale_[0] for s in fits])}
