"""Each source on tiny real files: the same four records, with exact line/row numbers."""
import gzip
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from pipeline import sources
from pipeline.config import SOURCE_KINDS, SourceConfig
from pipeline.errors import UserError
from tests.pipeline.helpers import COLUMNS, collect, source, tiny_schema, tiny_table, values

EXPECTED = tiny_table()
EXPECTED_VALUES = EXPECTED[["a", "b", "c", "d"]].to_numpy(dtype=float).tolist()


def _csv_text(sep=",", header=True):
    body = EXPECTED.to_csv(sep=sep, index=False, header=header, lineterminator="\n")
    return body


def test_registry_has_every_configurable_kind():
    assert sources.kinds() == sorted(SOURCE_KINDS)


@pytest.mark.parametrize("name, sep, kind, header", [
    ("t.csv", ",", "csv", True),          # plain CSV with a header
    ("t.csv", ",", "csv", False),         # no header: fields by position
    ("t.tsv", "\t", "tsv", True),         # TSV
    ("t.csv.gz", ",", "csv", True),       # gzip, found by suffix
])
def test_delimited_files(tmp_path, name, sep, kind, header):
    path = tmp_path / name
    text = _csv_text(sep, header)
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    schema = tiny_schema(header=header)
    got = collect(sources.read(source(path, kind), schema))
    assert values(got) == EXPECTED_VALUES
    assert got["label"].tolist() == ["0", "1", "0", "1"]
    assert got["line"].tolist() == ([2, 3, 4, 5] if header else [1, 2, 3, 4])
    assert got["reason"].isna().all() and (got["source"] == name).all()


def test_glob_and_blocks_keep_exact_line_numbers(tmp_path):
    rows = [f"{i % 10},{i % 7},1,2,{i % 2}" for i in range(3000)]
    for part in ("a", "b"):
        (tmp_path / f"{part}.csv").write_text("\n".join(rows) + "\n")
    cfg = SourceConfig(path=str(tmp_path / "*.csv"), blocksize=4096)      # ~7 blocks per file
    ingested = sources.read(cfg, tiny_schema(columns=None, label_column=-1))
    assert ingested.records.npartitions > 10
    got = collect(ingested)
    by_file = got.groupby("source")["line"].apply(list).to_dict()
    assert by_file == {n: list(range(1, 3001)) for n in ("a.csv", "b.csv")}
    assert (got["raw"].tolist() == rows * 2) and [i["name"] for i in ingested.inputs] == ["a.csv", "b.csv"]


def test_fsspec_url(tmp_path):
    import fsspec
    with fsspec.open("memory://dcpipe-test/t.csv", "w") as fh:
        fh.write(_csv_text())
    got = collect(sources.read(source("memory://dcpipe-test/*.csv"), tiny_schema(header=True)))
    assert values(got) == EXPECTED_VALUES


def test_parquet_row_groups(tmp_path):
    path = tmp_path / "t.parquet"
    EXPECTED.to_parquet(path, row_group_size=3)
    ingested = sources.read(source(path, "parquet"), tiny_schema())
    assert ingested.records.npartitions == 2
    got = collect(ingested)
    assert values(got) == EXPECTED_VALUES and got["line"].tolist() == [1, 2, 3, 4]
    assert json.loads(got["raw"][0]) == {"a": 1, "b": 0, "c": 9, "d": 1, "label": 0}


def test_jsonl_marks_malformed_and_wrong_keys(tmp_path):
    lines = [json.dumps(r) for r in EXPECTED.to_dict(orient="records")]
    lines += ["{not json", json.dumps({"a": 1}), json.dumps({**EXPECTED.iloc[0].to_dict(), "b": None})]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    got = collect(sources.read(source(tmp_path / "t.jsonl", "jsonl"), tiny_schema()))
    assert values(got)[:4] == EXPECTED_VALUES
    assert got["reason"].tolist()[4:6] == ["malformed", "wrong_field_count"]
    assert pd.isna(got["reason"][6]) and np.isnan(got["v1"][6])       # null = missing, for clean


@pytest.mark.parametrize("mode, expected", [("line", [("a.txt", 1, "Hi"), ("a.txt", 2, "there"),
                                                      ("b.txt", 1, "Bye")]),
                                             ("file", [("a.txt", 1, "Hi\nthere"), ("b.txt", 1, "Bye")])])
def test_text_per_line_or_per_file(tmp_path, mode, expected):
    (tmp_path / "a.txt").write_text("Hi\nthere\n")
    (tmp_path / "b.txt").write_text("Bye")
    cfg = SourceConfig(kind="text", path=str(tmp_path / "*.txt"), text_mode=mode)
    got = collect(sources.read(cfg, tiny_schema()))
    assert list(got[["source", "line", "text"]].itertuples(index=False, name=None)) == expected


def test_image_folder_labelled_by_subfolder(tmp_path):
    for i, row in EXPECTED.iterrows():
        folder = tmp_path / str(row["label"])
        folder.mkdir(exist_ok=True)
        pixels = np.array(row[["a", "b", "c", "d"]], dtype=np.uint8).reshape(2, 2)
        Image.fromarray(pixels, mode="L").save(folder / f"img{i}.png")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "1" / "big.png")    # wrong size
    (tmp_path / "1" / "broken.png").write_bytes(b"not a png")
    got = collect(sources.read(source(tmp_path, "images"), tiny_schema(columns=None, label_column=-1)))
    by_name = got.set_index("source")
    assert by_name.loc["1/big.png", "reason"] == "wrong_field_count"
    assert by_name.loc["1/broken.png", "reason"] == "malformed"
    ok = got[got["reason"].isna()].sort_values("source")
    assert values(ok) == [EXPECTED_VALUES[0], EXPECTED_VALUES[2], EXPECTED_VALUES[1], EXPECTED_VALUES[3]]
    assert ok["label"].tolist() == ["0", "0", "1", "1"]


def _sqlite(tmp_path):
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        EXPECTED.to_sql("samples", conn, index=False)
    return f"sqlite:///{path}"


@pytest.mark.parametrize("query, order_by, parts", [
    ("samples", "a", 2),                                  # a table, in partitions of 3 rows
    ("SELECT * FROM samples WHERE a > 0", None, 1),       # a query, one partition
])
def test_sqlite_table_or_query(tmp_path, query, order_by, parts):
    cfg = SourceConfig(kind="sql", path=_sqlite(tmp_path), query=query, order_by=order_by, rows_per_partition=3)
    ingested = sources.read(cfg, tiny_schema())
    assert ingested.records.npartitions == parts
    got = collect(ingested)
    assert values(got) == EXPECTED_VALUES and got["line"].tolist() == [1, 2, 3, 4]


def test_sql_errors_are_one_line(tmp_path):
    url = _sqlite(tmp_path)
    with pytest.raises(UserError, match=r"sqlite:///.*t\.db: query failed \(.*no such table"):
        sources.read(SourceConfig(kind="sql", path=url, query="nosuchtable"), tiny_schema())
    with pytest.raises(UserError, match=r"source\.query: a sql source needs"):
        sources.read(SourceConfig(kind="sql", path=url), tiny_schema())


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_xarray_zarr_and_netcdf(tmp_path, suffix):
    ds = xr.Dataset({"image": (("sample", "y", "x"), EXPECTED[["a", "b", "c", "d"]].to_numpy().reshape(4, 2, 2)),
                     "label": ("sample", EXPECTED["label"].to_numpy())})
    path = tmp_path / f"t{suffix}"
    (ds.chunk({"sample": 3}).to_zarr(path) if suffix == ".zarr" else ds.to_netcdf(path))
    got = collect(sources.read(source(path, "xarray"), tiny_schema(columns=None, label_column=-1)))
    assert values(got) == EXPECTED_VALUES and got["label"].tolist() == ["0", "1", "0", "1"]
    assert got["line"].tolist() == [1, 2, 3, 4]


# --- bad input: one line naming the file (and line), never a traceback -----------------------------

def _truncated_gzip(tmp_path):
    data = gzip.compress(("1,2,3,4,0\n" * 2000).encode())
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    return tmp_path / "t.csv.gz"


@pytest.mark.parametrize("make, match", [
    # a missing file
    (lambda p: p / "absent.csv", r"source\.path: no such file: .*absent\.csv"),
    # an empty file
    (lambda p: (p / "e.csv").write_text("") and None or p / "e.csv", r"e\.csv: file is empty"),
    # a gzip file cut short
    (_truncated_gzip, r"t\.csv\.gz: truncated or corrupt gzip file"),
    # bytes that are not UTF-8, on line 3
    (lambda p: (p / "l.csv").write_bytes(b"1,2,3,4,0\n1,2,3,4,0\n1,\xff,3,4,0\n") and p / "l.csv",
     r"l\.csv:3: not valid UTF-8 \(byte 0xff\)"),
])
def test_bad_files_are_one_line_errors(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(UserError, match=match) as info:
        collect(sources.read(source(path), tiny_schema(columns=None, label_column=-1)))
    assert "\n" not in str(info.value)


def test_header_mismatch_names_file_and_field(tmp_path):
    (tmp_path / "a.csv").write_text(_csv_text())
    (tmp_path / "b.csv").write_text(_csv_text().replace("c,d", "c,e", 1))
    with pytest.raises(UserError, match=r"b\.csv:1: header does not match: field 4 is 'e', expected 'd'"):
        sources.read(source(tmp_path / "*.csv"), tiny_schema(header=True))


def test_partly_bad_file_is_kept_row_by_row(tmp_path):
    (tmp_path / "p.csv").write_text("1,2,3,4,0\n1,2\n1,2,3,4,1\n")
    got = collect(sources.read(source(tmp_path / "p.csv"), tiny_schema(columns=None, label_column=-1)))
    assert got["reason"].tolist()[1] == "wrong_field_count" and len(got) == 3
    assert COLUMNS[-1] == "label"


@pytest.mark.parametrize("header, text, match", [
    # header: true on a file without one would drop its first record
    (True, _csv_text(header=False), r"t\.csv:1: schema\.header is true but line 1 is a record \(5 numbers, e\.g\. "
                                    r"1, 0, 9\), not field names: it would be dropped; set schema\.header: false"),
    # header: false on a file with one would quarantine the names as not_numeric
    (False, _csv_text(header=True), r"t\.csv:1: line 1 looks like a header \(field names such as 'a'\), but "
                                    r"schema\.header is false: .*; set schema\.header: true"),
])
def test_a_header_setting_that_does_not_fit_line_1_says_which_to_set(tmp_path, header, text, match):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(UserError, match=match):
        sources.read(source(tmp_path / "t.csv"), tiny_schema(header=header))


def test_a_first_record_with_one_bad_field_is_not_mistaken_for_a_header(tmp_path):
    (tmp_path / "t.csv").write_text("1,x,3,4,0\n" + _csv_text(header=False))
    got = collect(sources.read(source(tmp_path / "t.csv"), tiny_schema(header=False)))
    assert got["reason"].tolist()[0] == "not_numeric" and len(got) == 5
