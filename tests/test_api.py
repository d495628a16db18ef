"""The Python API as a user meets it: the README's snippet saved as a script and run as written
(no ``__main__`` guard) with the venv's python on a tiny config; ``pipeline.run`` returns a typed,
frozen result; an existing ``distributed.Client`` is used, not replaced."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import yaml
from distributed import Client, LocalCluster

import pipeline
from pipeline.job import prepare_only
from tests.conftest import REPO, small_config, take_balanced
from tests.pipeline.helpers import tiny_job


def readme_snippet() -> str:
    """The first ``python`` block of the README's "From Python" section."""
    section = (REPO / "README.md").read_text().split("### From Python", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_snippet_runs_as_a_script(tmp_path, mnist_lines):
    snippet = readme_snippet()
    assert "__main__" not in snippet          # as a user pastes it: no guard
    csv = tmp_path / "small.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 20)) + "\n")
    cfg = small_config(csv, train={"epochs": 1, "batch_size": 16, "np": 2})
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    (tmp_path / "snippet.py").write_text(snippet)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "dcpipe-work" / "runs").iterdir())
    assert len(runs) == 1, runs                # one run: no empty folders left by re-run scripts
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["state"] == "finished" and (runs[0] / "history.png").is_file()
    accuracy, version, plot = done.stdout.strip().splitlines()[-2].split()   # the snippet's first print
    assert float(accuracy) == summary["test_accuracy"] and version == summary["dataset_version"]
    assert done.stdout.strip().splitlines()[-1] == f"{summary['n_train_stored'] + summary['n_val'] + summary['n_test']} samples stored"


def test_run_result_is_frozen_and_typed():
    summary = {"run_id": "r1", "state": "finished", "dataset_version": "mnist@ab", "network": "cnn",
               "world_size": 2, "compression": "fp16", "n_train": 8, "n_val": 1, "n_test": 1,
               "n_quarantined": 0, "test_accuracy": 0.9, "test_loss": 0.3, "prepare_seconds": 1.0,
               "train_seconds": 2.0, "wall_seconds": 4.0, "run_dir": "w/runs/r1", "dataset_path": "w/datasets/mnist/ab",
               "bundle": "w/runs/r1/bundle", "tensorboard": "w/runs/r1/tensorboard", "report": "w/r.html",
               "history_plot": "w/runs/r1/history.png", "restarts": []}
    result = pipeline.RunResult.from_summary(summary)
    assert result.test_accuracy == 0.9 and result.bundle.name == "bundle" and result["restarts"] == []
    assert dict(result) == summary               # every summary field by key, as pipeline.job.run's dict
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.state = "failed"


def test_prepare_uses_the_given_client(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("".join(f"{i % 10},{i % 7},{i % 4},5,{i % 2}\n" for i in range(40)))
    cfg = tiny_job(csv, schema={"header": False})
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        prepared = prepare_only(cfg, tmp_path / "work", log=lambda *_: None, show_progress=False, client=client)
        assert client.status == "running"        # left running for the caller
        ran = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert prepared.ref.exists() and "validate" in ran
