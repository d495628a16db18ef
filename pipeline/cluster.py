"""The Dask client: the only module that starts clusters or touches ``distributed.Client``.

``dask_client(cfg)`` gives a client for ``cfg.kind``, one factory per kind in ``CLUSTER_KINDS``:

- ``local``: a ``LocalCluster`` on this machine (the default);
- ``address``: an existing scheduler (``tcp://`` or ``tls://`` with certificates, or a scheduler file);
- ``slurm``: dask-jobqueue's ``SLURMCluster``, adaptive between ``minimum_jobs`` and ``maximum_jobs``;
- ``kubernetes``: the Dask Kubernetes operator's ``KubeCluster``.

Whatever the kind, the caller gets a ``Client`` and runs the same code.

The schedulers started here load the monitor preload (:mod:`pipeline.monitor.preload`: the
``/dcpipe`` page, the training figures on ``/metrics``); :func:`monitor_client` gives a
scheduler without workers, for a run whose dataset is cached, so the dashboard still covers its
training. A dashboard address without a host (``:8787``) binds 127.0.0.1; a busy port is said in
one line naming the port taken instead.

The clusters started on this machine are quiet when idle (:data:`IDLE_QUIET`), and a run's local
workers are let go once the dataset is prepared (:func:`release_workers`): during training the
ranks share the machine with the scheduler only. Measured (bench/RESULTS-14.md): an idle 2-worker
``LocalCluster`` used 13% of a core, its scheduler alone 2.6%, with :data:`IDLE_QUIET` 0.4%.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ContextManager

import dask
from distributed import Client, LocalCluster
from distributed.security import Security

from pipeline import monitor
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


#: Dask settings of the clusters started here: the event-loop health tick every second instead of
#: every 20 ms (a blocked loop is still reported after ``distributed.admin.tick.limit``, 3 s) and the
#: dashboard's system monitor every 2 s instead of 0.5 s: each process idles at a fifth of the CPU.
IDLE_QUIET = {"distributed.admin.tick.interval": "1s", "distributed.admin.system-monitor.interval": "2s"}


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


def dashboard_bind(address: str) -> str:
    """The dashboard's listen address: a host-less ``:8787`` (or ``8787``) binds 127.0.0.1, so the
    dashboard is not open to the network unless ``cluster.dashboard_address`` names a host.

    >>> dashboard_bind(":8787"), dashboard_bind("0.0.0.0:8787")
    ('127.0.0.1:8787', '0.0.0.0:8787')
    """
    address = str(address).strip()
    if address.startswith(":"):
        return "127.0.0.1" + address
    return f"127.0.0.1:{address}" if address.isdigit() else address


def _preloads() -> list[str]:
    return [monitor.PRELOAD] if monitor.enabled() else []


@contextlib.contextmanager
def said_port_change(log) -> Iterator[None]:
    """distributed's three-line warning about a busy dashboard port, as one line of ``log``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message)
        if "is already in use" in text:
            asked, took = text.split()[1], text.rsplit("port", 1)[1].split()[0]
            log(f"Dask: dashboard port {asked} is busy; the dashboard took port {took} instead")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    with said_port_change(log), dask.config.set(IDLE_QUIET):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=cfg.threads_per_worker, processes=True,
                               dashboard_address=dashboard_bind(cfg.dashboard_address),
                               memory_limit=cfg.memory_limit, scheduler_kwargs={"preload": _preloads()})
    with cluster, Client(cluster) as client:
        log(f"Dask: {workers} workers x {cfg.threads_per_worker} thread(s); dashboard {client.dashboard_link}")
        yield client


def monitor_address() -> str:
    """A free local scheduler address for :func:`monitor_client`, known before it starts (the ranks
    are started with it while the scheduler comes up)."""
    return f"tcp://127.0.0.1:{_free_port()}"


@contextlib.contextmanager
def monitor_client(cfg: ClusterConfig, address: str, log=print) -> Iterator[Client]:
    """A client of a scheduler for the dashboard of a run that needs no Dask workers (its dataset
    is cached): for ``cluster.kind: address`` the configured scheduler (no wait for workers), for
    every other kind a scheduler without workers on this machine at ``address`` (no SLURM job or
    Kubernetes pod is started for it). Measured: 0.8 s to start, overlapped with the ranks' start."""
    if cfg.kind == "address":
        target = scheduler_target(cfg)
        with Client(**target, security=security(cfg), timeout=cfg.wait_for_workers) as client:
            yield client
        return
    port = int(address.rsplit(":", 1)[1])
    with said_port_change(log), dask.config.set(IDLE_QUIET):
        cluster = LocalCluster(n_workers=0, processes=True, scheduler_port=port, host="127.0.0.1",
                               dashboard_address=dashboard_bind(cfg.dashboard_address),
                               scheduler_kwargs={"preload": _preloads()})
    with cluster, Client(cluster) as client:
        log(f"Dask: scheduler for the dashboard (no workers: the dataset is cached); "
            f"dashboard {client.dashboard_link}")
        yield client


def release_workers(client: Client, log=print) -> bool:
    """Stop the workers of a ``LocalCluster`` this module started, keeping its scheduler (the
    dashboard, the ranks' figures): once prepared, a run needs no Dask workers, and idle ones took
    13% of a core from the ranks. Asynchronous (the workers close while the ranks start); True if
    there were workers to stop. Other clusters (an address, SLURM, Kubernetes) are left as they are."""
    cluster = getattr(client, "cluster", None)
    if not isinstance(cluster, LocalCluster) or not cluster.workers:
        return False
    n = len(cluster.workers)
    cluster.scale(0)
    log(f"Dask: dataset prepared; {n} local worker(s) stopped for training, the scheduler stays for the dashboard")
    return True


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
        python=sys.executable, scheduler_options={"dashboard_address": dashboard_bind(cfg.dashboard_address),
                                                  "preload": _preloads()})


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
    with said_port_change(log):
        cluster = slurm_cluster(cfg)
    with cluster:
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
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    scheduler["args"] = [*scheduler["args"], *(a for p in _preloads() for a in ("--preload", p))]
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
