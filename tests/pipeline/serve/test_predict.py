"""`dcpipe predict` on a real LocalCluster: the test split of the run's dataset, published as a
predictions version with lineage to the run, its accuracy the run's own test accuracy."""
import json
import re

import pytest

from pipeline import store
from pipeline.cli import main as cli_main
from pipeline.predict import parse_target


@pytest.mark.horovod
def test_predict_writes_a_predictions_version_and_prints_its_accuracy(trained, capsys):
    workdir, run_id, _ = trained
    args = ["predict", run_id, "--dataset", "mnist:test", "--workdir", str(workdir), "--workers", "2"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"accuracy (\d\.\d+)", out).group(1))
    summary = json.loads((workdir / "runs" / run_id / "summary.json").read_text())
    assert abs(accuracy - summary["test_accuracy"]) < 0.03, (accuracy, summary["test_accuracy"])
    ref = store.resolve_spec(workdir / "datasets", out.strip().splitlines()[-1])
    assert ref.name == "mnist-predictions"
    manifest = ref.manifest()
    assert manifest["lineage"]["run"] == run_id and manifest["lineage"]["input"] == summary["dataset_version"]
    assert manifest["lineage"]["split"] == "test" and manifest["records_out"] == summary["n_test"]
    ds = store.open_version(ref)
    assert set(ds.data_vars) == {"label", "probabilities", "true_label", "source_file", "source_line"}
    assert ds["probabilities"].shape == (summary["n_test"], 10)
    assert abs(float(ds["probabilities"].sum("class").mean()) - 1) < 1e-3
    assert store.verify(ref) == []                                  # sealed and checksummed like any version
    assert cli_main(args) == 0                                      # a second run reuses the version
    assert "(reused)" in capsys.readouterr().out


@pytest.mark.parametrize("spec, message", [
    ("mnist:holdout", r"unknown split 'holdout'; choose one of train, val, test, all"),
])
def test_a_bad_split_is_named(spec, message):
    from pipeline.errors import UserError
    with pytest.raises(UserError, match=message):
        parse_target(spec)
