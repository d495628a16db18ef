"""The whole main job in a reduced setting: a real LocalCluster, a real `horovodrun -np 2`."""
import json
import subprocess
import sys

import pytest
import xarray as xr

from pipeline import run
from tests.conftest import small_config

pytestmark = [pytest.mark.integration, pytest.mark.horovod]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, mnist_lines):
    from tests.conftest import take_balanced
    tmp = tmp_path_factory.mktemp("job")
    csv = tmp / "mnist_600.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 60) + ["not,a,row"]) + "\n")
    cfg = small_config(csv, train={"epochs": 1, "batch_size": 32, "np": 2})
    summary = run(cfg, workdir=tmp / "work", show_progress=False)
    return tmp / "work", summary


def test_summary_holds_sane_values(finished):
    workdir, summary = finished
    saved = json.loads((workdir / "runs" / summary["run_id"] / "summary.json").read_text())
    assert saved == summary
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (480, 60, 60)
    assert summary["n_quarantined"] == 1 and summary["quarantined"] == {"wrong_field_count": 1}
    assert summary["world_size"] == 2 and summary["compression"] == "fp16"
    assert 0.5 < summary["test_accuracy"] <= 1.0      # one epoch on 960 images: well above chance
    assert summary["dataset_version"].startswith("mnist@")
    assert 0 < summary["prepare_seconds"] < summary["wall_seconds"]


def test_store_opens_with_plain_xarray(finished):
    _, summary = finished
    ds = xr.open_zarr(f"{summary['dataset_path']}/data.zarr")
    assert ds.sizes["sample"] == 960 + 60 + 60
    assert ds["image"].shape[1:] == (28, 28, 1)


def test_both_ranks_trained_and_rank0_checkpointed(finished):
    workdir, summary = finished
    run_dir = workdir / "runs" / summary["run_id"]
    log = (run_dir / "train.log").read_text()
    assert "[train] 2 rank(s) on CPU" in log
    assert "[1]<stdout>:[rank 1/2] host" in log         # rank 1 started and says where
    assert (run_dir / "checkpoints" / "step-000000015" / "state.json").is_file()  # 480 per rank / 32


def test_exported_model_predicts_without_horovod(finished):
    workdir, summary = finished
    code = ("import sys, numpy as np, keras, xarray as xr\n"
            f"m = keras.models.load_model({summary['model']!r})\n"
            f"ds = xr.open_zarr({summary['dataset_path'] + '/data.zarr'!r})\n"
            "x = ds['image'][-60:].values; y = ds['label'][-60:].values\n"
            "acc = float((np.argmax(m.predict(x, verbose=0), -1) == y).mean())\n"
            "print(acc); assert 'horovod' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(float(out.stdout.split()[-1]) - summary["test_accuracy"]) < 0.1


def test_the_run_records_its_lineage_down_to_the_source_file(finished):
    workdir, summary = finished
    run_dir = workdir / "runs" / summary["run_id"]
    record = json.loads((run_dir / "lineage.json").read_text())
    assert summary["lineage"] == str(run_dir / "lineage.json")
    assert record["dataset"]["ref"] == summary["dataset_version"] and record["model"]["sha256"]
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "lineage", summary["run_id"], "--workdir",
                          str(workdir)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith(f"source   {(workdir.parent / 'mnist_600.csv').as_uri()}  ")
    assert "note" not in out.stdout
