"""The Dask client: the only module that starts clusters or touches ``distributed.Client``.

``dask_client(cfg)`` gives a client for ``cfg.kind``, one factory per kind in ``CLUSTER_KINDS``:

- ``local``: a ``LocalCluster`` on this machine (the default);
- ``address``: an existing scheduler (``tcp://`` or ``tls://`` with certificates, or a scheduler file);
- ``slurm``: dask-jobqueue's ``SLURMCluster``, adaptive between ``minimum_jobs`` and ``maximum_jobs``;
- ``kubernetes``: the Dask Kubernetes operator's ``KubeCluster``.

Whatever the kind, the caller gets a ``Client`` and runs the same code.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ContextManager

from distributed import Client, LocalCluster
from distributed.security import Security

from pipeline.config import ClusterConfig
from pipeline.errors import UserError

ClientFactory = Callable[[ClusterConfig, Callable], ContextManager[Client]]
CLUSTER_KINDS: dict[str, ClientFactory] = {}


def register_kind(kind: str) -> Callable[[ClientFactory], ClientFactory]:
    """Register the client factory of one ``cluster.kind``."""
    def add(factory: ClientFactory) -> ClientFactory:
        CLUSTER_KINDS[kind] = factory
        return factory
    return add


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(cfg: ClusterConfig, log=print) -> Iterator[Client]:
    """A client of the cluster that ``cfg.kind`` names, closed (and its cluster stopped) on exit."""
    try:
        factory = CLUSTER_KINDS[cfg.kind]
    except KeyError:
        raise UserError(f"cluster.kind {cfg.kind!r} is unknown; choose one of {sorted(CLUSTER_KINDS)}") from None
    # Each P2P shuffle (the split's sort) logs two scheduler WARNINGs that are routine, not trouble.
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    with factory(cfg, log) as client:
        yield client


def _wait_for_workers(client: Client, cfg: ClusterConfig, where: str, n: int = 1) -> None:
    try:
        client.wait_for_workers(n, timeout=cfg.wait_for_workers)
    except TimeoutError:
        raise UserError(f"{where}: fewer than {n} Dask worker(s) joined within cluster.wait_for_workers = "
                        f"{cfg.wait_for_workers:g} s; check that workers are running and can reach "
                        "the scheduler, or raise cluster.wait_for_workers") from None


def _describe(client: Client) -> str:
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    threads = sum(w["nthreads"] for w in workers)
    return f"{len(workers)} workers, {threads} threads; dashboard {client.dashboard_link}"


@register_kind("local")
@contextlib.contextmanager
def local_client(cfg: ClusterConfig, log=print) -> Iterator[Client]:
    """A ``LocalCluster`` (one worker per core unless ``cfg.workers``) with the dashboard on."""
    workers = cfg.workers or default_workers()
    with LocalCluster(n_workers=workers, threads_per_worker=cfg.threads_per_worker, processes=True,
                      dashboard_address=cfg.dashboard_address, memory_limit=cfg.memory_limit) as cluster, \
            Client(cluster) as client:
        log(f"Dask: {workers} workers x {cfg.threads_per_worker} thread(s); dashboard {client.dashboard_link}")
        yield client


def security(cfg: ClusterConfig) -> Security | None:
    """distributed's ``Security`` from ``cluster.tls``; None without certificates."""
    if cfg.tls is None:
        return None
    for field in ("ca_file", "cert", "key"):
        path = getattr(cfg.tls, field)
        if path is not None and not Path(path).is_file():
            raise UserError(f"cluster.tls.{field}: {path} is not a file; give the PEM file's path")
    return Security(tls_ca_file=cfg.tls.ca_file, tls_client_cert=cfg.tls.cert, tls_client_key=cfg.tls.key,
                    require_encryption=True)


def scheduler_target(cfg: ClusterConfig) -> dict:
    """``Client`` keywords that name the scheduler: address, else scheduler file, else the env."""
    if cfg.address:
        return {"address": cfg.address}
    if cfg.scheduler_file:
        if not Path(cfg.scheduler_file).is_file():
            raise UserError(f"cluster.scheduler_file: {cfg.scheduler_file} does not exist; start "
                            "`dask scheduler --scheduler-file PATH` first or set cluster.address")
        return {"scheduler_file": cfg.scheduler_file}
    if os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return {"address": os.environ["DASK_SCHEDULER_ADDRESS"]}
    raise UserError("cluster.kind 'address' needs cluster.address, cluster.scheduler_file or "
                    "$DASK_SCHEDULER_ADDRESS; e.g. cluster.address: tcp://10.0.0.5:8786")


@register_kind("address")
@contextlib.contextmanager
def address_client(cfg: ClusterConfig, log=print) -> Iterator[Client]:
    """A client of an existing scheduler; the cluster is left running on exit."""
    target = scheduler_target(cfg)
    where = f"cluster {next(iter(target.values()))}"
    if str(target.get("address", "")).startswith("tls://") and cfg.tls is None:
        raise UserError(f"{where}: a tls:// scheduler needs cluster.tls (ca_file, cert, key)")
    try:
        client = Client(**target, security=security(cfg), timeout=cfg.wait_for_workers)
    except (OSError, TimeoutError) as exc:
        raise UserError(f"{where}: cannot reach the Dask scheduler ({exc}); check the address, "
                        "that the scheduler runs, and cluster.tls for tls://") from None
    with client:
        _wait_for_workers(client, cfg, where, cfg.workers or 1)
        log(f"Dask: connected to {client.scheduler.address}: {_describe(client)}")
        yield client


def slurm_cluster(cfg: ClusterConfig):
    """dask-jobqueue's ``SLURMCluster`` for ``cluster.slurm``, not yet scaled."""
    from dask_jobqueue import SLURMCluster
    s = cfg.slurm
    return SLURMCluster(
        cores=s.cores, processes=s.processes, memory=s.memory, queue=s.queue, account=s.account,
        walltime=s.walltime, job_extra_directives=list(s.job_extra_directives),
        job_script_prologue=list(s.job_script_prologue), log_directory=s.log_directory,
        python=sys.executable, scheduler_options={"dashboard_address": cfg.dashboard_address})


def check_submission(job_script: str, timeout: float = 30) -> None:
    """``sbatch --test-only`` on the worker job script: a one-line error now when SLURM cannot take
    it (no sbatch, no controller, unknown partition or account), not a 5-minute wait for workers."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise UserError("cluster.kind 'slurm': sbatch is not on PATH; run on a SLURM login node, or choose "
                        "another --cluster")
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
        script.write(job_script)
        script.flush()
        try:
            out = subprocess.run([sbatch, "--test-only", script.name], capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"cluster.kind 'slurm': sbatch --test-only gave no answer in {timeout:g} s; "
                            "check that slurmctld runs (`sinfo`)") from None
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"cluster.slurm: sbatch cannot submit the worker job ({reason}); check "
                        "cluster.slurm.queue, account, cores and memory, and `sinfo`")


@register_kind("slurm")
@contextlib.contextmanager
def slurm_client(cfg: ClusterConfig, log=print) -> Iterator[Client]:
    """Dask workers as SLURM jobs, added and removed with the load; cancelled on exit."""
    with slurm_cluster(cfg) as cluster:
        check_submission(cluster.job_script())
        cluster.adapt(minimum_jobs=cfg.slurm.minimum_jobs, maximum_jobs=cfg.slurm.maximum_jobs)
        with Client(cluster) as client:
            _wait_for_workers(client, cfg, "cluster.slurm")
            log(f"Dask: SLURM jobs, adaptive {cfg.slurm.minimum_jobs}-{cfg.slurm.maximum_jobs}: "
                f"{_describe(client)}")
            yield client


def _kubernetes():
    try:
        operator = importlib.import_module("dask_kubernetes.operator")
    except ImportError:
        raise UserError("cluster.kind 'kubernetes' needs dask-kubernetes: "
                        "pip install 'dcpipe[kubernetes]' (dask-kubernetes==2026.3.0)") from None
    return operator


def kube_cluster_spec(cfg: ClusterConfig) -> dict:
    """The ``DaskCluster`` resource for ``cluster.kubernetes``: workers mount the dataset claim."""
    k = cfg.kubernetes
    resources = {"requests": {"cpu": k.cpu, "memory": k.memory}, "limits": {"cpu": k.cpu, "memory": k.memory}}
    spec = _kubernetes().make_cluster_spec(name=k.name, image=k.image, n_workers=k.n_workers,
                                           resources=resources, env={"OMP_NUM_THREADS": "1"})
    if k.claim:
        worker = spec["spec"]["worker"]["spec"]
        worker["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": k.claim}}]
        for container in worker["containers"]:
            container["volumeMounts"] = [{"name": "data", "mountPath": k.mount_path}]
    return spec


@register_kind("kubernetes")
@contextlib.contextmanager
def kubernetes_client(cfg: ClusterConfig, log=print) -> Iterator[Client]:
    """A ``DaskCluster`` created through the operator for this run, deleted on exit."""
    spec = kube_cluster_spec(cfg)
    try:
        cluster = _kubernetes().KubeCluster(custom_cluster_spec=spec, namespace=cfg.kubernetes.namespace)
    except ValueError as exc:   # kr8s: no kubeconfig or service account
        raise UserError(f"cluster.kind 'kubernetes': cannot reach a Kubernetes cluster ({exc}); check "
                        "`kubectl config current-context` or $KUBECONFIG") from None
    with cluster:
        if cfg.kubernetes.maximum_workers:
            cluster.adapt(minimum=cfg.kubernetes.n_workers, maximum=cfg.kubernetes.maximum_workers)
        with Client(cluster) as client:
            _wait_for_workers(client, cfg, f"cluster.kubernetes ({cfg.kubernetes.name})")
            log(f"Dask: Kubernetes cluster {cfg.kubernetes.name}: {_describe(client)}")
            yield client
