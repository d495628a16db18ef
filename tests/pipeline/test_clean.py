"""Each numeric cleaning step on tiny Dask frames of validated rows."""
import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.clean import clean, coerce, drop_duplicates, handle_missing, handle_outliers
from pipeline.config import CleanConfig, MissingPolicy, OutlierPolicy, SchemaConfig

SCHEMA = SchemaConfig(n_fields=3, labels=[0, 1], value_max=100, image_shape=(2, 1, 1))
COLS = ["p0", "p1"]


def _rows(values, labels=None, npartitions=2):
    n = len(values)
    frame = pd.DataFrame({"source": pd.array(["f.csv"] * n, dtype="string"), "line": np.arange(1, n + 1),
                          "raw": pd.array([str(v) for v in values], dtype="string"),
                          "label": np.array(labels if labels is not None else [0] * n, dtype="int16")})
    frame[COLS] = np.array(values, dtype="float64")
    return dd.from_pandas(frame, npartitions=npartitions, sort=False)


def _compute(*objs):
    with dask.config.set(scheduler="sync"):
        return dask.compute(*objs)


def test_missing_drop_quarantines_the_row():
    rows, quarantine, imputed = handle_missing(_rows([[1, 2], [np.nan, 4], [5, 6]]), COLS, MissingPolicy())
    rows, quarantine = _compute(rows, quarantine)
    assert rows["line"].tolist() == [1, 3] and imputed == 0
    assert quarantine[["line", "reason"]].values.tolist() == [[2, "missing_value"]]


@pytest.mark.parametrize("strategy, fill", [
    ("mean", [3.0, 4.0]),        # column means over all partitions: (1 + 5) / 2, (2 + 6) / 2 ... p1 has no NaN
    ("median", [1.0, 4.0]),      # approximate median of [1, 5, 1]
    ("constant", [7.0, 7.0]),
])
def test_missing_impute_fills_from_statistics_over_all_partitions(strategy, fill):
    values = [[1, 2], [np.nan, 4], [5, np.nan], [1, 6]]
    rows, quarantine, imputed = handle_missing(_rows(values, npartitions=3), COLS,
                                               MissingPolicy(strategy=strategy, fill_value=7))
    rows, quarantine, imputed = _compute(rows, quarantine, imputed)
    got = rows.sort_values("line")[COLS].to_numpy()
    assert len(quarantine) == 0 and imputed == 2
    assert got[1, 0] == pytest.approx(fill[0] if strategy != "mean" else 7 / 3)
    if strategy == "constant":
        assert got[2, 1] == 7.0
    elif strategy == "mean":
        assert got[2, 1] == pytest.approx(4.0)


def test_duplicates_are_found_across_partitions_and_the_first_kept():
    values = [[1, 2], [3, 4], [1, 2], [1, 2], [3, 4], [3, 4]]
    labels = [0, 0, 0, 1, 0, 0]                 # line 4 differs by its label: not a duplicate
    rows, dropped = drop_duplicates(_rows(values, labels, npartitions=3), COLS)
    rows, dropped = _compute(rows, dropped)
    assert sorted(rows["line"]) == [1, 2, 4] and dropped == 3


@pytest.mark.parametrize("method, action, kept_lines, last_value", [
    ("zscore", "drop", list(range(1, 20)), None),      # the 1000 is >3 std away
    ("iqr", "drop", list(range(1, 20)), None),
    ("iqr", "clip", list(range(1, 21)), "clipped"),
    ("zscore", "flag", list(range(1, 21)), 1000.0),
])
def test_outliers(method, action, kept_lines, last_value):
    values = [[10 + i % 3, 5] for i in range(19)] + [[1000, 5]]
    policy = OutlierPolicy(method=method, action=action, z_threshold=3)
    rows, quarantine, n_rows, n_values = handle_outliers(_rows(values, npartitions=3), COLS, policy)
    rows, quarantine, n_rows, n_values = _compute(rows, quarantine, n_rows, n_values)
    rows = rows.sort_values("line")
    assert rows["line"].tolist() == kept_lines and n_rows == 1 and n_values == 1
    if action == "drop":
        assert quarantine[["line", "reason"]].values.tolist() == [[20, "outlier"]]
    elif action == "clip":
        assert rows["p0"].iloc[-1] < 1000 and rows["p0"].iloc[-1] == pytest.approx(12 + 1.5 * 2, abs=1.1)
    else:
        assert rows["p0"].iloc[-1] == last_value and rows["outlier"].tolist() == [False] * 19 + [True]


def test_coerce_rounds_to_the_schema_dtype_and_drops_raw():
    out = _compute(coerce(_rows([[1.4, 2.6]]), COLS, SCHEMA))[0]
    assert out["p0"].dtype == np.uint8 and out[COLS].values.tolist() == [[1, 3]] and "raw" not in out
    wide = SchemaConfig(n_fields=3, labels=[0, 1], value_min=-5, value_max=1000, image_shape=(2, 1, 1))
    assert _compute(coerce(_rows([[-3, 999]]), COLS, wide))[0]["p1"].dtype == np.int32


def test_clean_chains_the_steps_and_counts_reconcile():
    values = [[1, 2], [1, 2], [np.nan, 3], [4, 5], [4, 500]]
    cfg = CleanConfig(outliers=OutlierPolicy(method="iqr"))
    result = clean(_rows(values, npartitions=2), cfg, SCHEMA)
    rows, quarantine, counts = _compute(result.rows, result.quarantine, result.counts)
    assert counts["duplicates_dropped"] == 1
    assert sorted(quarantine["reason"]) == ["missing_value", "outlier"]
    assert len(rows) + len(quarantine) + counts["duplicates_dropped"] == len(values)


def _tally(rows, quarantine, dropped, outliers):
    return pd.DataFrame({"out": [len(rows)], "quarantined": [len(quarantine)],
                         "dropped": [int(dropped["n"].sum())], "outliers": [int(outliers["n"].sum())]})


def test_the_last_pass_outputs_are_aligned_by_partition_and_reconcile_with_the_counts():
    values = [[1, 2], [1, 2], [np.nan, 3], [4, 5], [4, 500], [6, 7], [5, 6]]
    cfg = CleanConfig(outliers=OutlierPolicy(method="iqr", action="drop"))
    result = clean(_rows(values, npartitions=3), cfg, SCHEMA)
    last = result.last
    assert list(last) == ["rows", "quarantine", "duplicates_dropped", "outlier_rows_drop", "outlier_values"]
    parts = [last[name] for name in ("rows", "quarantine", "duplicates_dropped", "outlier_rows_drop")]
    tallies = dd.map_partitions(_tally, *parts, align_dataframes=False, enforce_metadata=False,
                                meta=_tally(*(part._meta for part in parts)))
    per_part, rows, counts, earlier, quarantine = _compute(tallies, result.rows, result.counts, result.earlier,
                                                           result.quarantine)
    assert len(per_part) == 3                 # one tally per partition: the outputs line up
    tally = per_part.sum()
    assert tally["out"] == len(rows) and tally["dropped"] == counts["duplicates_dropped"] == 1
    assert len(rows) + len(quarantine) + tally["dropped"] == len(values)
    assert list(earlier["reason"]) == ["missing_value"]      # dropped by the leading pass, before the statistics
    assert tally["quarantined"] == tally["outliers"] == counts["outlier_rows_drop"] >= 1
    assert sorted(set(quarantine["reason"])) == ["missing_value", "outlier"]
