"""The main job: prepare the dataset on a Dask cluster, then train on it with Horovod."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from models.launch import allocation_hosts, default_np, launch, new_run_dir
from models.plan import TrainPlan
from models.train_cmd import plan_for, resolve_dataset
from pipeline.cluster import dask_client
from pipeline.config import JobConfig, dump_yaml
from pipeline.errors import UserError
from pipeline.lineage import record_run
from pipeline.prepare import Prepared, prepare

SUMMARY_KEYS = ("run_id", "dataset_version", "n_train", "n_val", "n_test", "n_quarantined",
                "world_size", "compression", "test_accuracy", "prepare_seconds", "train_seconds",
                "wall_seconds")


def format_summary(summary: dict) -> str:
    """The summary as a two-column table."""
    width = max(len(k) for k in SUMMARY_KEYS)
    shown = (f"{v:.4f}" if isinstance(v, float) and "accuracy" in k else
             f"{v:.1f}" if isinstance(v, float) else str(v) for k, v in
             ((k, summary.get(k)) for k in SUMMARY_KEYS))
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in zip(SUMMARY_KEYS, shown))


def _resolve(config: JobConfig | None, workers: int | None, np: int | None, cluster: str | None = None) -> JobConfig:
    cfg = config or JobConfig()
    if cluster is not None:
        cfg = cfg.with_overrides(cluster={"kind": cluster})
    if workers is not None:
        cfg = cfg.with_overrides(cluster={"workers": workers})
    if np is not None:
        cfg = cfg.with_overrides(train={"np": np})
    return cfg


def _workdir(workdir: str | Path) -> Path:
    workdir = Path(workdir).resolve()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{workdir}: cannot create the working folder ({exc.strerror}); "
                        "choose a writable --workdir") from None
    if not os.access(workdir, os.W_OK):
        raise UserError(f"{workdir}: working folder is not writable; choose a writable --workdir")
    return workdir


def prepare_only(config: JobConfig | None = None, workdir: str | Path = "dcpipe-work",
                 workers: int | None = None, log=print, show_progress: bool = True,
                 cluster: str | None = None) -> Prepared:
    """Prepare (or find) the dataset version on the configured Dask cluster, without training."""
    cfg = _resolve(config, workers, None, cluster)
    workdir = _workdir(workdir)
    with dask_client(cfg.cluster, log=log) as client:
        return prepare(cfg, workdir / "datasets", client, log=log, show_progress=show_progress)


def existing_version(workdir: str | Path, dataset: str) -> Prepared:
    """The prepared version ``NAME@VERSION`` under ``workdir/datasets``, as ``dcpipe prepare`` printed it."""
    name, sep, version = dataset.partition("@")
    if not sep:
        raise UserError(f"--dataset {dataset!r} must be NAME@VERSION, as `dcpipe prepare` prints it")
    ref = resolve_dataset(dataset, _workdir(workdir) / "datasets")
    return Prepared(ref, ref.manifest(), True, 0.0)


def train_plan(cfg: JobConfig, prepared: Prepared, run_dir: Path) -> TrainPlan:
    """What every rank reads: the prepared store, its split ranges and the training settings."""
    if prepared.manifest["config"]["schema"] != cfg.to_dict()["schema"]:
        raise UserError(f"{prepared.ref.path}: dataset {prepared.ref} was prepared with another schema "
                        "than this config's; train with the config it was prepared with")
    return plan_for(cfg, prepared.ref, run_dir)


def run(config: JobConfig | None = None, workdir: str | Path = "dcpipe-work", workers: int | None = None,
        np: int | None = None, log=print, show_progress: bool = True, cluster: str | None = None,
        dataset: str | None = None, launcher: str = "horovodrun", hosts: str | None = None) -> dict:
    """Run the whole job and return its summary (also written to ``runs/<run-id>/summary.json``).

    ``dataset`` (``NAME@VERSION``) trains on an already prepared version and starts no Dask
    cluster; ``launcher`` and ``hosts`` choose how the Horovod ranks start (``models.launch``).

    >>> from pipeline import run
    >>> summary = run(workdir="dcpipe-work")          # doctest: +SKIP
    >>> summary["test_accuracy"] > 0.98               # doctest: +SKIP
    """
    started = time.perf_counter()
    cfg = _resolve(config, workers, np, cluster)
    world = cfg.train.np or default_np()
    if hosts == "slurm":
        try:
            hosts = allocation_hosts()
        except ValueError as exc:
            raise UserError(f"--hosts slurm: {exc}; give --hosts node1:N,... outside SLURM") from None
    workdir = _workdir(workdir)
    run_dir = new_run_dir(workdir)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    log(f"Run {run_dir.name} in {workdir}")

    prepared = (existing_version(workdir, dataset) if dataset else
                prepare_only(cfg, workdir, log=log, show_progress=show_progress))
    manifest = prepared.manifest
    metrics = launch(train_plan(cfg, prepared, run_dir), world, log=log, launcher=launcher, hosts=hosts)

    summary = {
        "run_id": run_dir.name, "dataset_version": str(prepared.ref), "dataset_path": str(prepared.ref.path),
        "dataset_cached": prepared.cached, "n_train": manifest["n_train"],
        "n_train_stored": manifest["n_train_stored"], "n_val": manifest["n_val"], "n_test": manifest["n_test"],
        "n_quarantined": sum(manifest["quarantined"].values()), "quarantined": manifest["quarantined"],
        "world_size": metrics["world_size"], "compression": metrics["compression"],
        "device": metrics["device"], "epochs": cfg.train.epochs, "test_accuracy": metrics["test_accuracy"],
        "test_loss": metrics["test_loss"], "prepare_seconds": round(prepared.seconds, 2),
        "train_seconds": round(metrics["train_seconds"], 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "model": str(run_dir / "model.keras"), "exported_model": str(run_dir / "saved_model"),
    }
    summary["lineage"] = str(record_run(run_dir, prepared.ref, summary))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"Summary ({run_dir / 'summary.json'}):\n{format_summary(summary)}")
    return summary
