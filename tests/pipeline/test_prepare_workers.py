"""A version is byte-identical whatever the number of Dask workers (real LocalClusters of 1 and 2)."""
import json

from pipeline.cluster import local_client
from pipeline.prepare import prepare
from tests.conftest import small_config


def test_one_and_two_workers_store_identical_bytes(small_csv, tmp_path):
    lines = small_csv.read_text().splitlines()
    lines[7] = "1,2,3"                                   # a quarantined row, so the quarantine has content
    small_csv.write_text("\n".join(lines) + "\n")
    indexes, versions = [], []
    for workers in (1, 2):
        # one block of input (the default blocksize): the partitions are whatever prepare makes of it
        cfg = small_config(small_csv, augment={"copies": 1}, cluster={"workers": workers})
        with local_client(cfg.cluster, log=lambda *_: None) as client:
            assert len(client.scheduler_info()["workers"]) == workers
            done = prepare(cfg, tmp_path / f"w{workers}", client, log=lambda *_: None, show_progress=False)
        versions.append(done.ref.version)
        indexes.append(json.loads((done.ref.path / "checksums.json").read_text())["files"])
    assert versions[0] == versions[1]
    differ = sorted(k for k in set(indexes[0]) | set(indexes[1]) if indexes[0].get(k) != indexes[1].get(k))
    assert differ == []
    assert "report.json" in indexes[0] and any(k.startswith("quarantine.parquet/") for k in indexes[0])
