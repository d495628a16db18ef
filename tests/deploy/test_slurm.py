"""The real sbatch script (deploy/slurm/dcpipe.sbatch) on a real single-node SLURM, 2 tasks."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.cluster import dask_client
from pipeline.config import ClusterConfig
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
    assert "-np 2 -H localhost:2 --gloo" in log            # --hosts slurm on a one-node allocation
    assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_slurm_kind_runs_dask_workers_as_slurm_jobs(slurm, tmp_path, monkeypatch):
    """cluster.kind slurm: dask-jobqueue submits worker jobs to this SLURM; work runs inside them."""
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    cfg = ClusterConfig.model_validate({
        "kind": "slurm", "dashboard_address": ":0", "wait_for_workers": 180,
        "slurm": {"cores": 1, "memory": "1GB", "walltime": "00:10:00", "minimum_jobs": 1, "maximum_jobs": 1,
                  "log_directory": str(tmp_path)}})
    lines = []
    try:
        with dask_client(cfg, log=lines.append) as client:
            job_ids = set(client.run(lambda: os.environ.get("SLURM_JOB_ID")).values())
            assert client.submit(sum, [1, 2, 3]).result() == 6
    except Exception:
        logs = "\n".join(p.read_text()[-2000:] for p in tmp_path.glob("*.err"))
        print(f"worker job logs:\n{logs}\nsqueue:\n{slurm.run('squeue', check=False).stdout}\n{slurm.logs()}")
        raise
    assert len(job_ids) == 1 and None not in job_ids          # the worker runs inside a SLURM job
    assert lines[0].startswith("Dask: SLURM jobs, adaptive 1-1: 1 workers")
    # closing the client cancels the worker job
    for _ in range(60):
        if not slurm.run("squeue", "-h", "-o", "%i", check=False).stdout.strip():
            break
        time.sleep(1)
    assert slurm.run("squeue", "-h", "-o", "%i").stdout.strip() == ""


def test_slurm_kind_that_cannot_submit_is_one_line_at_once(slurm, tmp_path, monkeypatch):
    """An unknown partition: sbatch refuses the worker job; dcpipe says so in one line, within seconds
    (not after cluster.wait_for_workers)."""
    from pipeline.errors import UserError
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    cfg = ClusterConfig.model_validate({"kind": "slurm", "dashboard_address": ":0", "wait_for_workers": 300,
                                        "slurm": {"queue": "no-such-partition", "log_directory": str(tmp_path)}})
    started = time.monotonic()
    with pytest.raises(UserError, match=r"cluster.slurm: sbatch cannot submit the worker job \(.*partition.*\)"):
        with dask_client(cfg, log=lambda *_: None):
            pass
    assert time.monotonic() - started < 60
