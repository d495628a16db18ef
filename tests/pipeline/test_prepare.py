import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline import store
from pipeline.cluster import local_client
from pipeline.errors import UserError
from pipeline.prepare import prepare
from tests.conftest import REPO, small_config


@pytest.fixture(scope="module")
def client():
    cfg = small_config("unused.csv")
    with local_client(cfg.cluster, log=lambda *_: None) as client:
        yield client


def _with_bad_lines(csv, tmp_path):
    lines = csv.read_text().splitlines()
    bad = ["1,2,3",                              # wrong_field_count
           ",".join(["x"] * 785),                # not_numeric
           ",".join(["0"] * 784 + ["11"]),       # label_not_allowed
           ",".join(["300"] * 784 + ["1"])]      # out_of_range
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(lines[:100] + bad + lines[100:]) + "\n")
    return path


def test_prepare_writes_a_plain_zarr_store_and_quarantine(small_csv, tmp_path, client):
    csv = _with_bad_lines(small_csv, tmp_path)
    cfg = small_config(csv, augment={"copies": 1})
    result = prepare(cfg, tmp_path / "datasets", client, log=lambda *_: None, show_progress=False)
    m = result.manifest
    assert not result.cached
    assert (m["records_in"], m["records_out"]) == (404, 400)
    assert m["quarantined"] == {"wrong_field_count": 1, "not_numeric": 1, "label_not_allowed": 1,
                                "out_of_range": 1}
    assert (m["n_train"], m["n_val"], m["n_test"], m["n_train_stored"]) == (320, 40, 40, 640)
    ds = xr.open_zarr(result.ref.data_path)              # plain xarray, no dcpipe code
    assert ds.sizes["sample"] == 720 and ds["image"].encoding["chunks"][0] == 64
    split = ds["split"].values
    assert m["ranges"] == {"train": [0, 640], "val": [640, 680], "test": [680, 720]}
    assert (split[:640] == 0).all() and (split[640:680] == 1).all() and (split[680:] == 2).all()
    assert int(ds["augmented"].sum()) == 320
    q = pd.read_parquet(result.ref.path / "quarantine.parquet")
    assert sorted(q["line"]) == [101, 102, 103, 104] and q.loc[q["line"] == 101, "raw"].item() == "1,2,3"
    saved = json.loads((result.ref.path / "manifest.json").read_text())
    assert saved["version"] == result.ref.version and saved["sources"][0]["name"] == "dirty.csv"


# Run as its own process with the garbage collector off: in this test process the old code's
# collections were released within ~0.2 s of prepare's return (a poll passed on it), in a process
# of its own they stayed until a collection (0 tasks left with `gc.collect()` first).
_HELD_AFTER_PREPARE = """
import gc, sys
gc.disable()
import dask.array
from pipeline.cluster import dask_client
from pipeline.config import load_config
from pipeline.prepare import prepare
cfg = load_config(None)
cluster = cfg.cluster.model_copy(update={"dashboard_address": ":0"})
if __name__ == "__main__":
    with dask_client(cluster, log=lambda *_: None) as client:
        prepare(cfg, sys.argv[1], client, log=lambda *_: None, show_progress=False)
        print(sorted({str(k) for k in client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))}))
        print([event for _, event in client.get_events(client.id) if event.get("action") == "cancel"])
        print(int(dask.array.ones(8, chunks=4).sum().compute()))   # the client still works
"""


def test_prepare_leaves_no_task_in_the_cluster(tmp_path):
    """What prepare persisted is released when it returns, not at a later garbage collection: a run
    stops its workers next, and the scheduler logged that it lost computed tasks (the quarantine's).
    Released, not cancelled: distributed 2026.8's scheduler can fail an assertion on a cancel of keys
    with their dependents and drop the client's connection (a compute right after prepare failed with
    "scheduler-connection-lost" in CI)."""
    script = tmp_path / "held.py"
    script.write_text(_HELD_AFTER_PREPARE)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "datasets")], capture_output=True,
                         text=True, timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    *_, tasks, cancels, total = out.stdout.strip().splitlines()
    assert (tasks, cancels, total) == ("[]", "[]", "8"), out.stdout[-2000:]


def test_same_inputs_are_a_cache_hit_and_other_config_a_new_version(small_csv, tmp_path, client):
    cfg = small_config(small_csv)
    root = tmp_path / "datasets"
    first = prepare(cfg, root, client, log=lambda *_: None, show_progress=False)
    said = []
    again = prepare(cfg.with_overrides(cluster={"workers": 1}), root, client, log=said.append,
                    show_progress=False)
    assert again.cached and again.ref == first.ref and "cache hit" in said[-1]
    other = prepare(cfg.with_overrides(seed=5), root, client, log=lambda *_: None, show_progress=False)
    assert other.ref.version != first.ref.version
    a = xr.open_zarr(first.ref.data_path)["label"].values
    b = xr.open_zarr(other.ref.data_path)["label"].values
    assert not np.array_equal(a, b)


def test_a_file_with_the_wrong_number_of_columns_says_so(tmp_path, client):
    path = tmp_path / "narrow.csv"
    path.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(UserError, match=r"narrow\.csv: all 2 records were quarantined .*line 1 has 3 "
                                        r"fields, expected schema\.n_fields = 785"):
        prepare(small_config(path), tmp_path / "datasets", client, log=lambda *_: None, show_progress=False)


def test_a_full_disk_stops_the_preparation_at_once_in_one_line_and_publishes_nothing(small_csv, tmp_path, client):
    """A real full disk: the datasets root on a 64 KiB tmpfs mounted for the test (needs root). The
    first task that cannot write ends the preparation with one line naming the folder and the fix; no
    version appears. (That a stage does not wait for its other tasks: tests/pipeline/test_progress.py.)"""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill ({mounted.stderr.strip()}): the test needs root")
    try:
        root = disk / "datasets"
        with pytest.raises(UserError, match=rf"^{re.escape(str(root))}: no space left on device while preparing "
                                            r"mnist@[0-9a-f]{16} \(.*\); free space there and in the Dask workers' "
                                            r"local directory .*or give a --workdir on a larger disk$"):
            prepare(small_config(small_csv), root, client, log=lambda *_: None, show_progress=False)
        assert store.versions(root, "mnist") == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
