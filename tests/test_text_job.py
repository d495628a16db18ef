"""The whole job on the labelled text example (docs/examples/text.yaml): a real LocalCluster, a real
`horovodrun -np 2`, a Transformer over token ids, and a serving bundle that reads raw text."""
import json
import runpy
import subprocess
import sys

import pytest
import xarray as xr

from pipeline import load_config, run
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.horovod]
EXAMPLES = REPO / "docs" / "examples"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text-job")
    cfg = load_config(EXAMPLES / "text.yaml").with_overrides(
        source={"path": str(EXAMPLES / "topics.tsv")}, cluster={"workers": 2, "dashboard_address": ":0"},
        train={"np": 2})
    summary = run(cfg, workdir=tmp / "work", show_progress=False)
    return tmp, summary


def test_text_job_learns_the_topics(finished):
    _, summary = finished
    manifest = json.loads((REPO / summary["dataset_path"] / "manifest.json").read_text())
    assert summary["dataset_version"].startswith("topics@") and summary["world_size"] == 2
    assert manifest["records_in"] == 2000 == (manifest["records_out"] + summary["n_quarantined"]
                                              + manifest["duplicates_dropped"])
    assert manifest["duplicates_dropped"] > 0 and {"wrong_field_count", "label_not_allowed", "empty_text"} <= set(
        summary["quarantined"])
    assert summary["test_accuracy"] > 0.8                      # chance is 0.25
    ds = xr.open_zarr(f"{summary['dataset_path']}/data.zarr")
    assert ds["tokens"].shape[1:] == (32,) and int(ds["augmented"].sum()) == summary["n_train"]
    plan = json.loads((REPO / summary["model"]).parent.joinpath("train_plan.json").read_text())
    assert plan["x_var"] == "tokens" and plan["input_shape"] == [32]
    assert plan["vocab_size"] == len(ds["tokens"].attrs["vocabulary"])


def test_bundle_predicts_raw_text_in_a_fresh_process(finished):
    tmp, summary = finished
    fresh = runpy.run_path(str(EXAMPLES / "make_topics.py"))["lines"](300, seed=7)   # sentences never seen
    labelled = [ln.split("\t", 1) for ln in fresh if "\t" in ln and ln.split("\t", 1)[1].strip()
                and not ln.startswith("music")]
    (tmp / "raw.txt").write_text("\n".join(text for _, text in labelled) + "\n")
    bundle = (REPO / summary["model"]).parent / "bundle"
    code = ("import json, sys\n"
            "from models.export import load_bundle\n"
            "texts = open(sys.argv[2]).read().splitlines()\n"
            "pred = load_bundle(sys.argv[1]).predict_text(texts)\n"
            "print(json.dumps({'pred': pred.tolist(), 'horovod': 'horovod' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(bundle), str(tmp / "raw.txt")], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    accuracy = sum(p == label for p, (label, _) in zip(result["pred"], labelled)) / len(labelled)
    assert len(result["pred"]) == len(labelled) > 200 and not result["horovod"]
    assert accuracy > 0.8
