"""The held-out case a new user brings: 8x8 digits (scikit-learn's 1,797), a header row, the label
column by name and first, pixels 0-16, the CSV beside the config and named relative to it. The
default network must train on it through the real job (LocalCluster, `horovodrun -np 2`)."""
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.models.helpers import horovodrun, rank_env

pytestmark = [pytest.mark.integration, pytest.mark.horovod]


def _digits_csv(path: Path) -> None:
    import sklearn
    raw = Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(raw, "rt") as fh:
        rows = [line.strip().split(",") for line in fh if line.strip()]
    header = ["digit", *(f"px{i}" for i in range(64))]
    path.write_text("\n".join(",".join(r) for r in [header, *([r[-1], *r[:-1]] for r in rows)]) + "\n")


def test_8x8_digits_with_a_named_label_column_train_with_the_default_network(tmp_path):
    horovodrun()
    folder = tmp_path / "project"
    folder.mkdir()
    _digits_csv(folder / "digits.csv")
    config = {"dataset": {"name": "digits"}, "source": {"path": "digits.csv"},   # relative to the config file
              "schema": {"n_fields": 65, "header": True, "label_column": "digit", "value_max": 16,
                         "image_shape": [8, 8, 1]},
              "augment": {"copies": 0}, "train": {"epochs": 3, "batch_size": 32},
              "cluster": {"workers": 1, "dashboard_address": ":0"}}
    (folder / "digits.yaml").write_text(yaml.safe_dump(config))
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", "project/digits.yaml",
                          "--workdir", "work", "--np", "2"], cwd=tmp_path, env=rank_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (summary_path,) = (tmp_path / "work" / "runs").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["state"] == "finished" and summary["n_quarantined"] == 0
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == 1797   # the header was not a record
    assert summary["test_accuracy"] > 0.8, summary
