import dask
import pandas as pd
import pytest

from pipeline.config import SchemaConfig
from pipeline.validate import validate
import dask.dataframe as dd

SCHEMA = SchemaConfig(n_fields=5, labels=[0, 1, 2], image_shape=(2, 2, 1))


def _records(lines):
    frame = pd.DataFrame({"source": pd.array(["f.csv"] * len(lines), dtype="string"),
                          "line": list(range(1, len(lines) + 1)),
                          "raw": pd.array(lines, dtype="string")})
    return dd.from_pandas(frame, npartitions=2)


def test_each_bad_line_is_quarantined_with_its_reason():
    lines = ["1,2,3,4,0",        # valid, label 0
             "1,2,3",            # wrong_field_count
             "1,x,3,4,1",        # not_numeric
             "1,2.5,3,4,1",      # not_numeric: pixels are integers
             "1,2,3,4,7",        # label_not_allowed
             "1,2,300,4,2",      # out_of_range
             "",                 # wrong_field_count: an empty line is a record too
             " 9, 8 ,7,6,2"]     # valid: spaces around numbers are fine
    result = validate(_records(lines), SCHEMA)
    with dask.config.set(scheduler="sync"):
        rows, quarantine = dask.compute(result.rows, result.quarantine)
    assert rows["line"].tolist() == [1, 8]
    assert rows["label"].tolist() == [0, 2]
    assert rows[["p0", "p1", "p2", "p3"]].to_numpy().tolist() == [[1, 2, 3, 4], [9, 8, 7, 6]]
    assert dict(zip(quarantine["line"], quarantine["reason"])) == {
        2: "wrong_field_count", 3: "not_numeric", 4: "not_numeric", 5: "label_not_allowed",
        6: "out_of_range", 7: "wrong_field_count"}
    assert quarantine.set_index("line").loc[3, "raw"] == "1,x,3,4,1"
    assert len(rows) + len(quarantine) == len(lines)


def test_label_column_can_be_first():
    schema = SchemaConfig(n_fields=5, labels=[0, 1], label_column=0, image_shape=(2, 2, 1))
    with dask.config.set(scheduler="sync"):
        rows = validate(_records(["1,10,20,30,40"]), schema).rows.compute()
    assert rows["label"].tolist() == [1]
    assert rows[["p0", "p1", "p2", "p3"]].to_numpy().tolist() == [[10, 20, 30, 40]]


@pytest.mark.parametrize("lines", [["1,2,3,4,0"] * 3, ["a,b"] * 3])
def test_every_record_lands_somewhere(lines):
    result = validate(_records(lines), SCHEMA)
    with dask.config.set(scheduler="sync"):
        rows, quarantine = dask.compute(result.rows, result.quarantine)
    assert len(rows) + len(quarantine) == 3
