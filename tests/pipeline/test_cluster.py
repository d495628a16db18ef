"""pipeline.cluster: real local clusters and schedulers reached by address; the SLURM job script as text."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from distributed import LocalCluster
from distributed.security import Security

from pipeline import cluster
from pipeline.cluster import dask_client, slurm_cluster
from pipeline.config import CLUSTER_KINDS, ClusterConfig, parse_config
from pipeline.errors import UserError


def _cfg(**fields) -> ClusterConfig:
    return ClusterConfig.model_validate({"dashboard_address": ":0", **fields})


@pytest.fixture
def scheduler():
    """A running in-process scheduler with one worker, reached by its address."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as lc:
        yield lc


def test_local_kind_starts_and_stops_a_local_cluster():
    lines = []
    with dask_client(_cfg(workers=1), log=lines.append) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        assert client.submit(sum, [1, 2, 3]).result() == 6
    assert client.status == "closed"
    assert lines[0].startswith("Dask: 1 workers x 1 thread(s)")


def test_address_kind_uses_the_existing_scheduler_and_leaves_it_running(scheduler):
    lines = []
    with dask_client(_cfg(kind="address", address=scheduler.scheduler_address), log=lines.append) as client:
        assert client.submit(sum, [4, 5]).result() == 9
    assert scheduler.status.name == "running" and len(scheduler.scheduler_info["workers"]) == 1
    assert lines == [f"Dask: connected to {scheduler.scheduler_address}: 1 workers, 1 threads; "
                     f"dashboard {lines[0].rsplit('dashboard ', 1)[1]}"]


def test_address_kind_reads_a_scheduler_file(scheduler, tmp_path):
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"address": scheduler.scheduler_address}))
    with dask_client(_cfg(kind="address", scheduler_file=str(path)), log=lambda *_: None) as client:
        assert client.scheduler.address == scheduler.scheduler_address


def test_address_kind_falls_back_to_the_dask_environment_variable(scheduler, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler.scheduler_address)
    with dask_client(_cfg(kind="address"), log=lambda *_: None) as client:
        assert client.scheduler.address == scheduler.scheduler_address


def test_address_kind_connects_over_tls_with_certificates(tmp_path):
    sec = Security.temporary()
    files = {}
    for field, pem in (("ca_file", sec.tls_ca_file), ("cert", sec.tls_client_cert), ("key", sec.tls_client_key)):
        files[field] = str(tmp_path / f"{field}.pem")
        Path(files[field]).write_text(pem)
    with LocalCluster(n_workers=1, processes=False, protocol="tls://", security=sec, dashboard_address=":0") as lc:
        assert lc.scheduler_address.startswith("tls://")
        with dask_client(_cfg(kind="address", address=lc.scheduler_address, tls=files),
                         log=lambda *_: None) as client:
            assert client.submit(sum, [1, 1]).result() == 2
        with pytest.raises(UserError, match=r"a tls:// scheduler needs cluster.tls"):
            with dask_client(_cfg(kind="address", address=lc.scheduler_address)):
                pass


@pytest.mark.parametrize("fields, match", [
    # nothing names the scheduler
    ({}, r"needs cluster.address, cluster.scheduler_file or \$DASK_SCHEDULER_ADDRESS"),
    # a scheduler file that was never written
    ({"scheduler_file": "/nonexistent/scheduler.json"}, r"cluster.scheduler_file: /nonexistent/scheduler.json does not exist"),
    # certificates that are not files
    ({"address": "tls://127.0.0.1:1", "tls": {"ca_file": "/no/ca.pem", "cert": "/no/c.pem"}},
     r"cluster.tls.ca_file: /no/ca.pem is not a file"),
    # nobody listens there
    ({"address": "tcp://127.0.0.1:9", "wait_for_workers": 1}, r"cannot reach the Dask scheduler"),
])
def test_address_kind_errors_name_the_field(fields, match, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(UserError, match=match):
        with dask_client(_cfg(kind="address", **fields)):
            pass


def test_address_kind_waits_for_the_requested_workers():
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as lc:
        with pytest.raises(UserError, match=r"fewer than 2 Dask worker\(s\) joined within cluster.wait_for_workers"):
            with dask_client(_cfg(kind="address", address=lc.scheduler_address, workers=2, wait_for_workers=1)):
                pass


def test_slurm_job_script_carries_the_configured_resources(tmp_path):
    cfg = _cfg(kind="slurm", slurm={
        "queue": "gpu", "account": "proj42", "cores": 4, "processes": 2, "memory": "8GB", "walltime": "02:00:00",
        "job_extra_directives": ["--exclusive"], "job_script_prologue": ["module load cuda"],
        "log_directory": str(tmp_path)})
    with slurm_cluster(cfg) as sc:
        script = sc.job_script()
    lines = script.splitlines()
    for directive in ("#SBATCH -p gpu", "#SBATCH -A proj42", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                      "#SBATCH -t 02:00:00", "#SBATCH --exclusive", f"#SBATCH -o {tmp_path}/dask-worker-%J.out"):
        assert directive in lines, script
    assert lines.index("module load cuda") < next(i for i, line in enumerate(lines) if "dask_worker" in line)
    worker = next(line for line in lines if "dask_worker" in line)
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://")
    assert "--nthreads 2" in worker and "--nworkers 2" in worker


def test_slurm_minimum_jobs_above_maximum_is_a_user_error():
    with pytest.raises(UserError, match=r"config: cluster.slurm: minimum_jobs 5 is above maximum_jobs 2"):
        parse_config({"cluster": {"slurm": {"minimum_jobs": 5, "maximum_jobs": 2}}})


def test_kubernetes_kind_without_dask_kubernetes_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", None)   # makes the import fail
    with pytest.raises(UserError, match=r"needs dask-kubernetes: pip install 'dcpipe\[kubernetes\]'"):
        with dask_client(_cfg(kind="kubernetes")):
            pass


def test_every_configurable_kind_has_a_factory():
    assert set(cluster.CLUSTER_KINDS) == set(CLUSTER_KINDS)


def test_kubernetes_kind_without_a_kubernetes_cluster_is_a_user_error(tmp_path, monkeypatch):
    pytest.importorskip("dask_kubernetes.operator", reason="dask-kubernetes is not installed")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(UserError, match=r"cluster.kind 'kubernetes': cannot reach a Kubernetes cluster"):
        with dask_client(_cfg(kind="kubernetes")):
            pass


def test_slurm_kind_without_sbatch_is_one_line(monkeypatch):
    from pipeline.cluster import check_submission
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match=r"cluster.kind 'slurm': sbatch is not on PATH; run on a SLURM login node"):
        check_submission("#!/bin/sh\n")
