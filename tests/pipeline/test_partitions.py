"""Per-partition work with several outputs, the one-partition broadcast, z-score bounds from
moments, and the fast sizeof of wide frames."""
import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.sizeof import sizeof
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import partitions
from pipeline.clean.outliers import zscore_bounds
from pipeline.partitions import gather, per_partition, total
from pipeline.sizeof import frame_sizeof

CALLS = []


def _evens_odds(frame: pd.DataFrame, offset: pd.DataFrame):
    CALLS.append(len(frame))
    even = frame["x"] % 2 == 0
    return frame[even] + int(offset["m"].iloc[0]), frame[~even], int(even.sum())


def test_each_partition_runs_once_for_all_outputs_and_gets_the_whole_reduction():
    frame = dd.from_pandas(pd.DataFrame({"x": np.arange(100)}), npartitions=4)
    offset = gather(frame, lambda part: part[["x"]].max().to_frame("m").T,
                    lambda parts: parts.max().to_frame().T.rename(columns={"x": "m"}),
                    pd.DataFrame({"m": pd.Series(dtype="int64")}), name="test-max")
    evens, odds, n_even = per_partition(frame, _evens_odds, (frame._meta, frame._meta, None), offset, name="test-split")
    CALLS.clear()
    with dask.config.set(scheduler="sync"):
        evens, odds, n = dask.compute(evens, odds, total(n_even))
    assert sorted(CALLS) == [25, 25, 25, 25]                   # once per partition, not once per output
    assert evens["x"].tolist() == [x + 99 for x in range(0, 100, 2)] and odds["x"].tolist() == list(range(1, 100, 2))
    assert n == 50


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=2, max_size=300), st.floats(0.5, 6))
def test_zscore_bounds_from_moments_equal_numpy(values, z):
    x = np.asarray(values, dtype="float64")
    low, high = zscore_bounds(float(len(x)), x.sum(keepdims=True), (x * x).sum(keepdims=True), z)
    std = x.std(ddof=1)
    if std == 0:
        assert np.isneginf(low[0]) and np.isposinf(high[0])     # a constant column has no outliers
    else:
        np.testing.assert_allclose([low[0], high[0]], [x.mean() - z * std, x.mean() + z * std], rtol=1e-9, atol=1e-9)


def test_fast_sizeof_of_a_wide_frame_is_close_to_the_bytes_pandas_counts():
    frame = pd.DataFrame(np.ones((1000, 785)), columns=[f"p{i}" for i in range(785)])
    frame.insert(0, "source", pd.array(["a.csv"] * 1000, dtype="string"))
    counted = int(frame.memory_usage(deep=True).sum())
    assert sizeof(frame) == frame_sizeof(frame)                 # registered for DataFrames
    assert abs(frame_sizeof(frame) - counted) / counted < 0.05


def test_the_private_dask_path_is_fenced_to_the_expression_it_subclasses():
    frame = dd.from_pandas(pd.DataFrame({"x": np.arange(10)}), npartitions=2)
    evens, = per_partition(frame, lambda part: (part[part["x"] % 2 == 0],), (frame._meta,), name="test-fence")
    if partitions.META_LOCKS:                      # Python 3.11: the lock-free meta is what runs
        assert type(evens.expr) is partitions._GivenMeta
        with pytest.raises(RuntimeError, match=r"map_partitions made a Assign, not MapPartitions; "
                                               r"pipeline/partitions.py must be updated"):
            partitions._given_meta(frame.assign(y=1))
    assert evens.compute()["x"].tolist() == [0, 2, 4, 6, 8]
