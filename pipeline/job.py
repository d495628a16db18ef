"""The main job: prepare the dataset on a Dask cluster, then train on it.

The cluster stays up until training ends, so its dashboard (and the ``/dcpipe`` page,
``pipeline.monitor``) covers the whole job. On a cache hit no workers are started: a scheduler
alone comes up for the dashboard, in the background while the ranks start (0.8 s measured;
``DCPIPE_MONITOR=0``: none at all). On a cache miss the run's ranks start as soon as the cluster
is up, while Dask prepares (TensorFlow's import and Horovod's init off the critical path,
:func:`pipeline.training.early_ranks`); they get their plan once the version is ready.

``run`` and ``train`` are the application layer's two entry points; both end in
:func:`pipeline.training.train`, the one training path.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from models.launch import allocation_hosts
from pipeline import store
from pipeline.cluster import dask_client, release_workers
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline import monitor
from pipeline.monitor.session import Watch, background_watch
from pipeline.prepare import Prepared, locate, prepare
from pipeline.training import LaunchOptions, check_input_kind, config_for, early_ranks, start_clock, train
from pipeline.workdir import Workdir

SUMMARY_KEYS = ("run_id", "state", "dataset_version", "n_train", "n_val", "n_test", "n_quarantined",
                "network", "world_size", "compression", "test_accuracy", "prepare_seconds", "train_seconds",
                "wall_seconds", "bundle", "tensorboard", "report")
#: shown only when the run has them: a language model's figures, the note of a skipped bundle, its start
OPTIONAL_KEYS = ("test_perplexity", "test_token_accuracy", "bundle_note", "init_from")


def format_summary(summary: dict) -> str:
    """The summary as a two-column table."""
    keys = [*SUMMARY_KEYS, *(k for k in OPTIONAL_KEYS if summary.get(k) is not None)]
    width = max(len(k) for k in keys)
    shown = (f"{v:.4f}" if isinstance(v, float) and "accuracy" in k else
             f"{v:.1f}" if isinstance(v, float) else v["run_id"] if k == "init_from" else str(v) for k, v in
             ((k, summary.get(k)) for k in keys))
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in zip(keys, shown))


def _resolve(config: JobConfig | None, workers: int | None = None, np: int | None = None,
             cluster: str | None = None, compression: str | None = None, epochs: int | None = None) -> JobConfig:
    """``config`` (default: the built-in one) with the command line's overrides."""
    cfg = config or JobConfig()
    clusters = {k: v for k, v in (("kind", cluster), ("workers", workers)) if v is not None}
    trains = {k: v for k, v in (("np", np), ("compression", compression), ("epochs", epochs)) if v is not None}
    if clusters:
        cfg = cfg.with_overrides(cluster=clusters)
    for key, value in trains.items():   # one at a time, so that an error names its flag
        try:
            cfg = cfg.with_overrides(train={key: value})
        except UserError as exc:
            rule = str(exc).split(f"train.{key}: ", 1)[-1].removesuffix(f" (got {value!r})")
            raise UserError(f"--{key} {value!r}: {rule}") from None
    return cfg


def prepare_only(config: JobConfig | None = None, workdir: str | Path = "dcpipe-work",
                 workers: int | None = None, log=print, show_progress: bool = True,
                 cluster: str | None = None, client=None) -> Prepared:
    """Prepare (or find) the dataset version; a Dask cluster starts only when there is work (and
    ``client``, a ``distributed.Client``, is not given)."""
    with contextlib.ExitStack() as stack:
        return _prepare_in(stack, _resolve(config, workers, cluster=cluster), workdir, log, show_progress,
                           client=client)[0]


def _prepare_in(stack: contextlib.ExitStack, cfg: JobConfig, workdir: str | Path, log, show_progress: bool,
                marks: dict | None = None, client=None, release: bool = False,
                on_cluster=None) -> tuple[Prepared, Watch | None]:
    """Prepare (or find) the version; the cluster, when one was needed, stays open in ``stack``
    and is returned watched; with ``release`` the local workers it started are stopped once the
    version is prepared (training needs the cores; :func:`pipeline.cluster.release_workers`).
    ``on_cluster(watch)`` is called when there is work to do, once the cluster is up and before the
    preparation starts. ``marks`` gets the wall-clock ``located``, ``cluster_started`` and ``prepared``."""
    marks = {} if marks is None else marks
    root = Workdir.open(workdir).datasets
    located = locate(cfg, root, log)
    marks["located"] = time.time()
    watch = None
    if located.cached is None:
        ours = client is None
        client = client if client is not None else stack.enter_context(dask_client(cfg.cluster, log=log))
        marks["cluster_started"] = time.time()
        watch = Watch(client, tls=cfg.cluster.tls, log=log) if monitor.enabled() else None
        if on_cluster is not None:
            on_cluster(watch)
        prepared = prepare(cfg, root, client, log=log, show_progress=show_progress, located=located)
        if release and ours:
            release_workers(client, log=log)
    else:
        prepared = located.cached
    marks["prepared"] = time.time()
    return prepared, watch


def _watch(stack: contextlib.ExitStack, cfg: JobConfig, watch: Watch | None, log) -> Watch:
    """The prepare cluster's watch, else (a cache hit) a scheduler started in the background."""
    if watch is not None or not monitor.enabled():
        return watch or Watch()
    watch, running = background_watch(cfg.cluster, log=log)
    stack.enter_context(running)
    return watch


def existing_version(workdir: str | Path, dataset: str) -> Prepared:
    """The prepared version ``NAME[@VERSION|@PREFIX|@TAG|@latest]`` under ``workdir/datasets``."""
    start = time.perf_counter()
    try:
        ref = store.resolve_spec(Workdir.open(workdir).datasets, dataset)
    except UserError as exc:
        raise UserError(f"--dataset {dataset}: {exc}") from None
    return Prepared(ref, ref.manifest(), True, time.perf_counter() - start)


def _options(launcher: str, hosts: str | None, resume: bool | str, verify: bool) -> LaunchOptions:
    if hosts == "slurm":
        try:
            hosts = allocation_hosts()
        except ValueError as exc:
            raise UserError(f"--hosts slurm: {exc}; give --hosts node1:N,... outside SLURM") from None
    return LaunchOptions(launcher=launcher, hosts=hosts, resume=resume, verify=verify)


def run(config: JobConfig | None = None, workdir: str | Path = "dcpipe-work", workers: int | None = None,
        np: int | None = None, log=print, show_progress: bool = True, cluster: str | None = None,
        dataset: str | None = None, launcher: str = "horovodrun", hosts: str | None = None,
        resume: bool | str = False, compression: str | None = None, epochs: int | None = None,
        verify: bool = False, client=None) -> dict:
    """Run the whole job and return its summary (also written to ``runs/<run-id>/summary.json``).

    ``dataset`` (``NAME@VERSION``, a unique version prefix, a tag or ``latest``) trains on an
    already prepared version and starts no Dask cluster; without ``config`` that version's own
    config is used. ``launcher`` and ``hosts`` choose how the Horovod ranks start (``models.launch``).

    >>> from pipeline import run
    >>> summary = run(workdir="dcpipe-work")          # doctest: +SKIP
    >>> summary["test_accuracy"] > 0.98               # doctest: +SKIP
    """
    started = start_clock()
    options = _options(launcher, hosts, resume, verify)
    work = Workdir.open(workdir)
    with contextlib.ExitStack() as stack:
        watch = early = None

        def start_ranks(watch: Watch | None) -> None:
            """A new run's ranks start while Dask prepares (:func:`pipeline.training.early_ranks`)."""
            nonlocal early
            if not options.resume:
                early = stack.enter_context(early_ranks(cfg, work, options, watch, log))

        if dataset:
            prepared = existing_version(work.path, dataset)
            cfg = _resolve(config_for(prepared, config), workers, np, cluster, compression, epochs)
            started["marks"]["located"] = started["marks"]["prepared"] = time.time()
        else:
            cfg = _resolve(config, workers, np, cluster, compression, epochs)
            text = cfg.source.is_text
            check_input_kind(cfg.train.network, "tokens" if text else "image",
                             f"source.kind {cfg.source.kind} gives")
            # TensorFlow is imported by the ranks alone; a network that cannot take the input is their
            # one-line error, not restarted (models.train._network, models.launch.PlanRejected).
            prepared, watch = _prepare_in(stack, cfg, work.path, log, show_progress, started["marks"], client,
                                          release=True, on_cluster=start_ranks)
        summary = train(cfg, prepared, work, options, log=log, started=started,
                        watch=_watch(stack, cfg, watch, log), early=early)
    log(f"Summary ({Path(summary['run_dir']) / 'summary.json'}):\n{format_summary(summary)}")
    return summary
