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


def _predict_file(workdir, run_id, path, capsys):
    code = cli_main(["predict", run_id, "--input", str(path), "--workdir", str(workdir), "--workers", "2"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.horovod
def test_predict_input_file_of_raw_records_on_a_local_cluster(trained, tmp_path, capsys, monkeypatch):
    """Raw CSV records, labelled and not (with a header and a blank line), in blocks of 7 lines: the
    same labels as the bundle's own predict, lineage to the run and the file, accuracy only with labels."""
    import numpy as np

    import pipeline.predict as predict_mod
    from models.export import load_bundle
    monkeypatch.setattr(predict_mod, "BLOCK_LINES", 7)
    workdir, run_id, lines = trained
    expected = load_bundle(workdir / "runs" / run_id / "bundle").predict_csv([line.rsplit(",", 1)[0] for line in lines])
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")   # line 11 is blank
    code, out, err = _predict_file(workdir, run_id, labelled, capsys)
    assert code == 0, err
    accuracy = float(re.search(r"accuracy (\d\.\d+)", out).group(1))
    truth = [int(line.rsplit(",", 1)[1]) for line in lines]
    assert accuracy == pytest.approx(np.mean(expected == np.array(truth)), abs=1e-4)
    ref = store.resolve_spec(workdir / "datasets", out.strip().splitlines()[-1])
    ds, manifest = store.open_version(ref), ref.manifest()
    assert ref.name == "mnist-predictions" and store.verify(ref) == []
    assert ds["label"].values.tolist() == expected.tolist() and ds["true_label"].values.tolist() == truth
    assert ds["source_line"].values.tolist() == list(range(1, 11)) + list(range(12, 22))
    lineage = manifest["lineage"]
    assert lineage["run"] == run_id and lineage["input"] == str(labelled.resolve()) and lineage["labelled"] is True
    assert manifest["sources"][0]["sha256"] == lineage["input_sha256"] and manifest["records_out"] == len(lines)

    unlabelled = tmp_path / "unlabelled.csv"
    header = ",".join(f"pixel{i}" for i in range(784))
    unlabelled.write_text(header + "\n" + "\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    code, out, err = _predict_file(workdir, run_id, unlabelled, capsys)
    assert code == 0, err
    assert "accuracy" not in out
    ds = store.open_version(store.resolve_spec(workdir / "datasets", out.strip().splitlines()[-1]))
    assert "true_label" not in ds and ds["label"].values.tolist() == expected.tolist()
    assert ds["source_line"].values.tolist() == list(range(2, 22))


@pytest.mark.horovod
@pytest.mark.parametrize("edit, message", [
    # a pixel past the schema's value_max on line 3, found by a worker
    (lambda ls: ls[:2] + [ls[2].replace(ls[2].split(",")[0], "300", 1)] + ls[3:],
     r"--input .*bad\.csv:3: field 0 is 300\.0, outside the schema's range \[value_min 0, value_max 255\]"),
    # the first record is neither 785 nor 784 fields
    (lambda ls: ["1,2,3"] + ls, r"--input .*bad\.csv:1: expected 785 fields \(with the label\) or 784 \(without\), got 3"),
    # a label the run does not know
    (lambda ls: [ls[0].rsplit(",", 1)[0] + ",11"] + ls[1:], r"bad\.csv:1: label '11' is not one of the run's labels"),
])
def test_a_bad_input_record_is_one_line_naming_file_and_line(trained, tmp_path, capsys, edit, message):
    workdir, run_id, lines = trained
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(edit(list(lines))) + "\n")
    code, _, err = _predict_file(workdir, run_id, bad, capsys)
    last = err.strip().splitlines()[-1]                             # the cluster may log above it
    assert code == 2 and last.startswith("dcpipe: error: --input ") and re.search(message, last), err
