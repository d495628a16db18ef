"""Validation of parsed records: each bad record is quarantined with the first reason that applies."""
import dask
import dask.dataframe as dd
import pandas as pd
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.clean import clean
from pipeline.config import CleanConfig, SchemaConfig
from pipeline.sources.delimited import parse_delimited
from pipeline.sources.files import InputFile
from pipeline.validate import validate

SCHEMA = SchemaConfig(n_fields=5, labels=[0, 1, 2], image_shape=(2, 2, 1))
FILE = InputFile(fs=None, path="/data/f.csv", name="f.csv", size=1)


def _records(lines, schema=SCHEMA, npartitions=2):
    frame = parse_delimited(lines, FILE, 1, delimiter=",", n_fields=schema.n_fields,
                            label_pos=schema.label_index())
    return dd.from_pandas(frame, npartitions=npartitions, sort=False)


def _run(lines, schema=SCHEMA):
    result = validate(_records(lines, schema), schema)
    with dask.config.set(scheduler="sync"):
        return dask.compute(result.rows, result.quarantine)


def test_each_bad_line_is_quarantined_with_its_reason():
    lines = ["1,2,3,4,0",        # valid, label 0
             "1,2,3",            # wrong_field_count
             "1,x,3,4,1",        # not_numeric
             "1,2.5,3,4,1",      # not_numeric: an int schema's values are integers
             "1,2,3,4,7",        # label_not_allowed
             "1,2,300,4,2",      # out_of_range
             "",                 # wrong_field_count: an empty line is a record too
             " 9, 8 ,7,6,2",     # valid: spaces around numbers are fine
             "1,2,3,4,",         # missing_value: no label
             "1,,3,4,1"]         # valid here: a missing value is the clean stage's to drop or impute
    rows, quarantine = _run(lines)
    assert rows["line"].tolist() == [1, 8, 10]
    assert rows["label"].tolist() == [0, 2, 1]
    assert rows[["p0", "p1", "p2", "p3"]].fillna(-1).to_numpy().tolist() == [[1, 2, 3, 4], [9, 8, 7, 6],
                                                                               [1, -1, 3, 4]]
    assert dict(zip(quarantine["line"], quarantine["reason"])) == {
        2: "wrong_field_count", 3: "not_numeric", 4: "not_numeric", 5: "label_not_allowed",
        6: "out_of_range", 7: "wrong_field_count", 9: "missing_value"}
    assert quarantine.set_index("line").loc[3, "raw"] == "1,x,3,4,1"
    assert len(rows) + len(quarantine) == len(lines)


def test_label_column_can_be_first_or_named():
    schema = SchemaConfig(n_fields=5, labels=[0, 1], label_column=0, image_shape=(2, 2, 1))
    rows, _ = _run(["1,10,20,30,40"], schema)
    assert rows["label"].tolist() == [1]
    assert rows[["p0", "p1", "p2", "p3"]].to_numpy().tolist() == [[10, 20, 30, 40]]
    named = SchemaConfig(n_fields=5, columns=["y", "a", "b", "c", "d"], label_column="y", labels=["0", "1"],
                         image_shape=(2, 2, 1))
    rows, _ = _run(["1,10,20,30,40"], named)
    assert rows["label"].tolist() == [1]          # text labels are stored as their position


def test_float_schema_keeps_fractions():
    schema = SchemaConfig(n_fields=5, labels=[0, 1], dtype="float", value_min=-1, value_max=1,
                          image_shape=(2, 2, 1))
    rows, quarantine = _run(["0.5,-0.25,1e-3,0,1", "0.5,-2,0,0,1"], schema)
    assert rows[["p0", "p1", "p2"]].to_numpy().tolist() == [[0.5, -0.25, 1e-3]]
    assert quarantine["reason"].tolist() == ["out_of_range"]


# --- counts reconcile exactly, whatever the input -------------------------------------------------

VALID = st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.integers(0, 2))
KINDS = {
    "valid": VALID.map(lambda t: (",".join(map(str, t)), None)),
    "wrong_field_count": st.lists(st.integers(0, 9), max_size=8).filter(lambda v: len(v) != 5)
                           .map(lambda v: (",".join(map(str, v)), "wrong_field_count")),
    "not_numeric": VALID.map(lambda t: (f"{t[0]},a{t[1]},{t[2]},{t[3]},{t[4]}", "not_numeric")),
    "missing_value": VALID.map(lambda t: (f"{t[0]},{t[1]},,{t[3]},{t[4]}", "missing_value")),
    "label_not_allowed": VALID.map(lambda t: (f"{t[0]},{t[1]},{t[2]},{t[3]},{t[4] + 3}", "label_not_allowed")),
    "out_of_range": VALID.map(lambda t: (f"{t[0]},{t[1] + 256},{t[2]},{t[3]},{t[4]}", "out_of_range")),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(*KINDS.values()), min_size=1, max_size=40), st.integers(1, 4))
def test_constructed_rows_land_where_expected(cases, npartitions):
    lines = [line for line, _ in cases]
    result = validate(_records(lines, npartitions=min(npartitions, len(lines))), SCHEMA)
    cleaned = clean(result.rows, CleanConfig(), SCHEMA)
    with dask.config.set(scheduler="sync"):
        rows, q1, q2, counts = dask.compute(cleaned.rows, result.quarantine, cleaned.quarantine, cleaned.counts)
    quarantine = pd.concat([q1, q2])
    expected = pd.Series([r for _, r in cases if r]).value_counts().to_dict()
    assert quarantine["reason"].value_counts().to_dict() == expected
    valid = [line for line, r in cases if r is None]
    assert counts["duplicates_dropped"] == len(valid) - len(set(valid))
    assert len(lines) == len(rows) + len(quarantine) + counts["duplicates_dropped"]
    assert sorted(quarantine["line"].tolist() + rows["line"].tolist()) == sorted(
        set(range(1, len(lines) + 1)) - set(_duplicate_lines(lines, cases)))


def _duplicate_lines(lines, cases):
    seen, dup = set(), []
    for i, (line, reason) in enumerate(cases, start=1):
        if reason is None:
            (dup.append(i) if line in seen else seen.add(line))
    return dup


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                        max_size=30) | st.just("1,2,3,4,0"), min_size=1, max_size=30))
def test_garbage_lines_reconcile(lines):
    result = validate(_records(lines, npartitions=1), SCHEMA)
    cleaned = clean(result.rows, CleanConfig(), SCHEMA)
    with dask.config.set(scheduler="sync"):
        rows, q1, q2, counts = dask.compute(cleaned.rows, result.quarantine, cleaned.quarantine, cleaned.counts)
    assert len(lines) == len(rows) + len(q1) + len(q2) + counts["duplicates_dropped"]
    assert set(q1["reason"]) | set(q2["reason"]) <= {"wrong_field_count", "not_numeric", "missing_value",
                                                     "label_not_allowed", "out_of_range"}
