"""The real sbatch script (deploy/slurm/dcpipe.sbatch) on a real single-node SLURM, 2 tasks."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import small_config

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "deploy" / "slurm" / "dcpipe.sbatch"


def _job_env(slurm, workdir: Path) -> dict[str, str]:
    return {**slurm.env, "DCPIPE_BIN": str(Path(sys.executable).parent), "DCPIPE_WORKDIR": str(workdir),
            "DCPIPE_DASHBOARD": ":0",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def test_sbatch_prepares_and_trains_in_one_allocation(slurm, small_csv, tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump(small_config(small_csv).to_dict()))
    workdir, out = tmp_path / "work", tmp_path / "job.out"
    slurm.env = _job_env(slurm, workdir)
    proc = slurm.run("sbatch", "--wait", "--parsable", "-n", "2", "-o", str(out), "-D", str(tmp_path),
                     str(SBATCH), "--config", str(cfg), check=False, timeout=600)
    log = out.read_text() if out.exists() else "(no job output)"
    dask_logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in workdir.glob("slurm/*/*.log"))
    assert proc.returncode == 0, f"sbatch: {proc.stderr}\n{log}\n{dask_logs}\n{slurm.logs()}"

    summaries = list(workdir.glob("runs/*/summary.json"))
    assert len(summaries) == 1, log
    summary = json.loads(summaries[0].read_text())
    assert summary["world_size"] == 2
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == 400
    name, version = summary["dataset_version"].split("@")
    assert (workdir / "datasets" / name / version / "manifest.json").is_file()
    # The dataset was prepared on the allocation's Dask workers, one per task, not a LocalCluster.
    assert "Dask: connected to tcp://" in log and "2 workers" in log, log
    assert f"prepared {summary['dataset_version']}" in log
    assert 0.0 <= summary["test_accuracy"] <= 1.0
