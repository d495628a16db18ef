"""Prepare with dirty input on a real LocalCluster: nothing lost, counts in the manifest, the report,
the quality gates; and the CLI's one-line exit 2 for a corrupt file."""
import gzip
import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from pipeline.cluster import local_client
from pipeline.errors import UserError
from pipeline.prepare import prepare
from tests.pipeline.helpers import tiny_job, tiny_table

GOOD = [f"{i % 10},{(i * 3) % 11},{i % 4},5,{i % 2}" for i in range(40)]
BAD = ["1,2,3",          # wrong_field_count
       "1,x,3,4,0",      # not_numeric
       "1,2,,4,1",       # missing_value (clean.missing.strategy drop)
       "1,2,3,4,9",      # label_not_allowed
       "1,2,3,40,0"]     # out_of_range
DUPLICATES = [GOOD[0], GOOD[1]]


@pytest.fixture(scope="module")
def client():
    cfg = tiny_job("unused.csv")
    with local_client(cfg.cluster, log=lambda *_: None) as client:
        yield client


def _quiet(cfg, root, client):
    return prepare(cfg, root, client, log=lambda *_: None, show_progress=False)


def test_every_record_is_stored_quarantined_or_counted_as_duplicate(tmp_path, client):
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(GOOD[:20] + BAD + DUPLICATES + GOOD[20:]) + "\n")
    result = _quiet(tiny_job(path, schema={"header": False}), tmp_path / "datasets", client)
    m = result.manifest
    assert (m["records_in"], m["records_out"], m["duplicates_dropped"]) == (47, 40, 2)
    assert m["quarantined"] == {"wrong_field_count": 1, "not_numeric": 1, "missing_value": 1,
                                "label_not_allowed": 1, "out_of_range": 1}
    assert m["label_counts"] == {"0": 20, "1": 20}
    q = pd.read_parquet(result.ref.path / "quarantine.parquet")
    assert sorted(q["line"]) == [21, 22, 23, 24, 25] and set(q["source"]) == {"dirty.csv"}
    assert q.loc[q["line"] == 22, "raw"].item() == "1,x,3,4,0"
    report = json.loads((result.ref.path / "report.json").read_text())
    assert report["records_in"] == 47 and report["label_distribution"] == {"0": 20, "1": 20}
    assert set(report["columns"]) == {"p0", "p1", "p2", "p3"} and report["columns"]["p3"]["std"] == 0
    html = (result.ref.path / "report.html").read_text()
    # label distribution, 4 histograms, the montage of stored images (no augmented copies: copies 0)
    assert html.count("data:image/png;base64,") == 6 and "out_of_range" in html


def test_a_parquet_source_prepares_too(tmp_path, client):
    table = pd.concat([tiny_table()] * 5, ignore_index=True).assign(d=range(20))
    table.loc[3, "d"] = 99                                                       # out_of_range
    table.to_parquet(tmp_path / "t.parquet", row_group_size=7)
    cfg = tiny_job(tmp_path / "t.parquet", source={"kind": "parquet"}, schema={"value_max": 30},
                   split={"train": 0.5, "val": 0.25, "test": 0.25})
    m = _quiet(cfg, tmp_path / "datasets", client).manifest
    assert (m["records_in"], m["records_out"], m["quarantined"]) == (20, 19, {"out_of_range": 1})


@pytest.mark.parametrize("gates, match", [
    # 5 of 45 records quarantined = 11% > 10%
    ({"max_quarantined_fraction": 0.1}, r"quality gate failed: 11\.1% of records quarantined \(5 of 45"),
    # 20 rows per label < 21
    ({"min_rows_per_class": 21}, r"quality gate failed: label '0' has 20 rows < gates\.min_rows_per_class 21"),
])
def test_quality_gates_stop_with_one_line(tmp_path, client, gates, match):
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(GOOD + BAD) + "\n")
    cfg = tiny_job(path, gates=gates)
    with pytest.raises(UserError, match=match):
        _quiet(cfg, tmp_path / "datasets", client)
    with pytest.raises(UserError, match=match):           # a cache hit is gated too
        _quiet(cfg, tmp_path / "datasets", client)


def test_cli_prepare_on_a_truncated_gzip_is_one_line_exit_2(tmp_path):
    data = gzip.compress(("\n".join(GOOD * 50) + "\n").encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    cfg = tiny_job(tmp_path / "cut.csv.gz", cluster={"workers": 1}).to_dict()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "prepare", "--config", str(tmp_path / "c.yaml"),
                          "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("dcpipe: error: ") and "cut.csv.gz: truncated or corrupt gzip file" in last
    assert "Traceback" not in out.stderr


def test_a_rejected_version_is_published_marked_and_never_latest(tmp_path, client):
    from pipeline import store
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(GOOD + BAD) + "\n")
    root = tmp_path / "datasets"
    passing = _quiet(tiny_job(path).with_overrides(seed=1), root, client).ref   # another version, passes
    strict = tiny_job(path, gates={"max_quarantined_fraction": 0.1})
    with pytest.raises(UserError, match=r"quality gate failed: 11\.1% of records quarantined"):
        _quiet(strict, root, client)
    rejected = [r for r in store.versions(root, "mnist") if r != passing]
    assert len(rejected) == 1 and (rejected[0].path / "quarantine.parquet").exists()   # there to inspect
    quality = rejected[0].manifest()["quality"]
    assert (quality["passed"], quality["gate"]) == (False, "max_quarantined_fraction")
    assert quality["gates"]["max_quarantined_fraction"] == 0.1
    assert passing.manifest()["quality"]["passed"] is True
    assert store.resolve_spec(root, "mnist") == passing                # latest skips the rejected one
    assert store.resolve_spec(root, str(rejected[0])) == rejected[0]   # named, it resolves ...
    with pytest.raises(UserError, match=r"quality gate failed: 11\.1% .*\(verdict recorded when mnist@"):
        store.check_ready(rejected[0])                                 # ... but is not ready to train
    # looser gates now: the same version id, a cache hit, and the verdict recorded at publish stands
    with pytest.raises(UserError, match=r"quality gate failed: 11\.1% .*\(recorded when the version was "
                                        r"published: gates are not part of the version id"):
        _quiet(strict.with_overrides(gates={"max_quarantined_fraction": 0.5}), root, client)
