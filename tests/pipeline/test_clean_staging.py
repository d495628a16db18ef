"""Staging validated rows on disk between the whole-file cleaning passes (pipeline.clean.staging)."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pandas as pd
import pytest

from pipeline import store
from pipeline.clean import clean
from pipeline.clean.staging import exact_dtype
from pipeline.cluster import local_client
from pipeline.config import CleanConfig, MissingPolicy, OutlierPolicy
from pipeline.prepare import prepare
from tests.conftest import small_config, take_balanced
from tests.pipeline.test_clean import SCHEMA, _compute, _rows


@pytest.mark.parametrize("values, dtype", [
    ([0, 7, 255], "uint8"), ([-3, 300], "int16"), ([70000, 0], "int32"), ([0.5, 2.0], "float32"),
    ([0.1], "float64"), ([1.0, np.nan], "float32"), ([], "uint8"),
])
def test_exact_dtype_is_the_narrowest_that_holds_every_value(values, dtype):
    block = np.asarray(values, dtype="float64").reshape(-1, 1)
    assert exact_dtype(block) == np.dtype(dtype)
    assert np.array_equal(block.astype(exact_dtype(block)).astype("float64"), block, equal_nan=True)


def _values(n=240):
    values = np.stack([np.arange(n) % 100, np.arange(n) // 100], axis=1).astype("float64")   # all distinct
    values[5, 0] = np.nan                    # missing
    values[[10, 77, 200]] = values[3]        # duplicates (200 in another partition)
    values[50, 1] = 100                      # an outlier
    return values


@pytest.mark.parametrize("cfg", [
    CleanConfig(),
    CleanConfig(outliers=OutlierPolicy(method="zscore", action="drop", z_threshold=3)),
    CleanConfig(missing=MissingPolicy(strategy="mean"), outliers=OutlierPolicy(method="iqr", action="clip")),
    CleanConfig(missing=MissingPolicy(strategy="median"), duplicates="keep",
                outliers=OutlierPolicy(method="zscore", action="flag", z_threshold=3)),
], ids=["duplicates", "zscore-drop", "mean-iqr-clip", "median-flag"])
def test_staged_clean_gives_the_rows_quarantine_and_counts_of_the_in_memory_one(cfg, tmp_path):
    got = []
    for staging in (None, tmp_path / "scratch"):
        done = clean(_rows(_values(), npartitions=4), cfg, SCHEMA, staging=staging)
        got.append(_compute(done.rows, done.quarantine, done.counts))
    (rows, quarantine, counts), (s_rows, s_quarantine, s_counts) = got
    pd.testing.assert_frame_equal(s_rows, rows)
    pd.testing.assert_frame_equal(s_quarantine, quarantine)
    assert s_counts == counts and counts["duplicates_dropped"] == (3 if cfg.duplicates == "drop" else 0)
    outliers = sum(v for k, v in counts.items() if k.startswith("outlier_rows"))
    assert outliers >= 1 if cfg.outliers.method != "none" else "outlier_values" not in counts
    staged = sorted(p.suffix for p in (tmp_path / "scratch").iterdir())
    assert staged == [".arrow"] * 4 + [".npy"] * 4          # each partition once, however many passes
    narrow = {str(np.load(p).dtype) for p in (tmp_path / "scratch").glob("*.npy")}
    assert narrow == ({"float32", "uint8"} if cfg.missing.strategy != "drop" else {"uint8"})   # NaN: a float


@pytest.mark.parametrize("staged", [False, True], ids=["in-memory", "staged"])
def test_the_last_pass_is_one_task_per_partition_given_every_statistic(staged, tmp_path):
    """Read, drop duplicates, mark outliers and cast in one task: a step's output that was a task
    of its own stayed in worker memory until all its consumers ran (the 4 GB benchmark held 16
    partitions of two steps' outputs per worker); and the read starts only once the statistics are known."""
    cfg = CleanConfig(outliers=OutlierPolicy(method="zscore", action="flag", z_threshold=3))
    done = clean(_rows(_values(), npartitions=4), cfg, SCHEMA, staging=tmp_path if staged else None)
    graph = dict(done.rows.__dask_graph__())

    def deps(key):
        return {d if isinstance(d, str) else d[0] for d in graph[key].dependencies}

    def tasks(prefix):
        return [k for k in graph if isinstance(k, tuple) and re.fullmatch(prefix + "-[0-9a-f]{32}", k[0])]
    last = tasks("clean-rows")
    assert len(last) == 4
    before = set.union(*(deps(k) for k in last))
    base = {d for d in before if d.startswith("clean-stage" if staged else "clean-leading")}
    assert len(base) == 1 and all(base <= deps(k) for k in last)   # its own partition: receipt or rows
    statistics = before - base
    assert len(statistics) == 2                         # the duplicate table and the outlier bounds
    assert all(statistics <= deps(k) for k in last), [deps(k) for k in last]
    names = {k[0] if isinstance(k, tuple) else k for k in graph}
    assert not [n for n in names if re.match("clean-(dup|outliers|coerce|read)", n)]   # no step a task of its own


def test_gc_removes_the_scratch_of_a_killed_prepare_only(tmp_path):
    gone = subprocess.Popen(["sleep", "30"])
    gone.kill()
    gone.wait()
    dead = tmp_path / "tiny" / f".scratch-{'a' * 16}-{gone.pid}-abcdef"
    live = tmp_path / "tiny" / f".scratch-{'b' * 16}-{os.getpid()}-abcdef"
    for folder in (dead, live):
        folder.mkdir(parents=True)
        (folder / "x.npy").write_bytes(b"")
    assert store.gc(tmp_path, keep=1, name="tiny").cleaned == [dead]
    assert not dead.exists() and live.exists()


@pytest.mark.parametrize("staged_files", ["*/.scratch-*/*.npy", "*/.scratch-*/split/*.npy"],
                         ids=["validated-rows", "split-table"])
def test_a_worker_killed_while_passes_read_the_staged_rows_loses_nothing(tmp_path, mnist_lines, staged_files):
    """SIGKILL one of two workers once the rows (the cleaning's, or the split table) are staged; the
    nanny restarts it, Dask recomputes what it held (from the staged files, or by staging again)
    and the version is the undisturbed one."""
    csv = tmp_path / "m.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 250) * 2) + "\n")   # 5,000 rows, half duplicates
    cfg = small_config(csv, source={"blocksize": 1 << 20}, augment={"copies": 0})
    indexes, killed = [], []
    for root in (tmp_path / "calm", tmp_path / "killed"):
        with local_client(cfg.cluster, log=lambda *_: None) as client:
            pids = client.run(os.getpid)
            stop = threading.Event()

            def kill_once_staged(root=root, pids=pids, stop=stop):
                while not stop.is_set():
                    if any(root.glob(staged_files)):
                        os.kill(next(iter(pids.values())), signal.SIGKILL)
                        killed.append(time.time())
                        return
                    time.sleep(0.05)
            watcher = threading.Thread(target=kill_once_staged, daemon=True)
            if root.name == "killed":
                watcher.start()
            try:
                done = prepare(cfg, root, client, log=lambda *_: None, show_progress=False)
            finally:
                stop.set()
        indexes.append(json.loads((done.ref.path / "checksums.json").read_text())["files"])
        assert done.manifest["duplicates_dropped"] == 2500 and done.manifest["records_in"] == 5000
        assert not list(root.glob("*/.scratch-*")), "prepare leaves no staged rows behind"
    assert len(killed) == 1, "the worker was not killed: the staged passes finished first"
    assert indexes[0] == indexes[1]


def test_the_split_table_waits_on_disk_not_in_worker_memory(tmp_path, mnist_lines, monkeypatch):
    """Once ingest-to-split is computed, the workers hold its receipts and the quarantine, not the
    rows (persisted, a 20 GB CSV's split table outgrew two workers); the store reads them back."""
    from distributed import LocalCluster
    from pipeline import partitions
    csv = tmp_path / "m.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 200)) + "\n")   # 2,000 rows: 1,568,000 pixel bytes
    cfg = small_config(csv, augment={"copies": 0})
    held, waited = [], partitions.wait_persisted

    def wait_and_measure(persisted):
        done = waited(persisted)
        held.append(sum(ts.nbytes for ts in cluster.scheduler.tasks.values() if ts.state == "memory"))
        return done
    monkeypatch.setattr(partitions, "wait_persisted", wait_and_measure)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster, \
            cluster.get_client() as client:
        done = prepare(cfg, tmp_path / "datasets", client, log=lambda *_: None, show_progress=False)
    assert done.manifest["records_out"] == 2000
    # what is held is the quarantine's 24 empty partitions (~200 KB by sizeof), whatever the rows
    assert len(held) == 1 and held[0] < 1_568_000 / 4, f"{held} bytes held after the split: the rows, not receipts"
    assert not list((tmp_path / "datasets").glob("*/.scratch-*")), "prepare leaves no staged rows behind"
