"""The one training path: ``dcpipe run``, ``dcpipe run --dataset`` and ``dcpipe train`` all end here.

Everything that can be checked is checked before a run folder exists: the dataset version is ready
(``store.check_ready``: manifest sealed, every chunk present, not rejected by a quality gate; every
checksum with ``--verify``), the config fits the stored data (schema, network), the network builds
on the stored input shape, and a rank's share holds a batch. Only then is the run folder made and
locked (one writer), the ranks launched, and the run's record written: ``summary.json`` (running,
then finished / failed / interrupted) and ``lineage.json``. ``dcpipe run`` on data not yet prepared
starts the ranks earlier, while Dask prepares (:func:`early_ranks`): their folder exists from then
on and holds only their ``train.log`` until the checks pass; it is removed when they do not.

With a :class:`pipeline.monitor.session.Watch` the ranks report to the Dask scheduler (the
``/dcpipe`` page, ``/metrics``), a terminal shows a progress bar, and the run writes
``trace.json``; ``summary.json``'s ``time_breakdown`` splits the wall time into cluster start,
prepare, setup, rank start, training, evaluation, export and finish (they add up to it).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from models import sharding
from models.launch import EarlyRanks, PlanRejected, TrainingFailed, default_np, launch
from models.plan import TOKEN_NETWORKS, TrainPlan
from models.rundir import RunBusy, RunDir, atomic_write_text
from pipeline import plots, pretrained, store
from pipeline.config import JobConfig, dump_yaml, parse_config
from pipeline.errors import UserError
from pipeline.lineage import record_run
from pipeline.monitor.session import Watch, breakdown
from pipeline.prepare import Prepared
from pipeline.workdir import Workdir


@dataclass(frozen=True, kw_only=True)
class LaunchOptions:
    """How the ranks start and which run they write; the flags ``dcpipe run`` and ``train`` share."""

    launcher: str = "horovodrun"    # models.launch.LAUNCHERS
    hosts: str | None = None        # -H node1:2,node2:2 (resolved, not `slurm`)
    resume: bool | str = False      # True: the newest run on the version; a run id: that run
    verify: bool = False            # the full checksum pass before training


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start_clock() -> dict:
    """The job's start: ``clock`` (perf counter), ``at`` (ISO time), ``marks`` (wall-clock
    boundaries of the time breakdown, see ``pipeline.monitor.session.SEGMENTS``)."""
    return {"clock": time.perf_counter(), "at": now(), "marks": {"start": time.time()}}


def config_for(prepared: Prepared, cfg: JobConfig | None) -> JobConfig:
    """The run's config: ``cfg`` when given (its data sections must match the version's), else the
    version's own data config with the default training settings."""
    stored = prepared.manifest["config"]
    if cfg is None:
        return parse_config({**stored, "train": JobConfig().to_dict()["train"]},
                            origin=f"{prepared.ref.path / store.MANIFEST}")
    if stored["schema"] != cfg.to_dict()["schema"]:
        raise UserError(f"{prepared.ref.path}: dataset {prepared.ref} was prepared with another schema "
                        "than this config's; train with the config it was prepared with")
    return cfg


def transform_of(manifest: dict, features: dict, x_var: str) -> dict:
    """The feature transform a raw record needs before the network, for the serving bundle: the
    dataset's stored fitted ``features`` (the same object that prepared the training data), with the
    text cleaning for text."""
    config = manifest["config"]
    schema = config["schema"]
    if x_var == "tokens":
        return {"kind": "text_sequence", "clean": config["clean"]["text"], "features": features,
                "labels": list(schema["labels"])}
    return {"kind": "image_features", "features": features, "x_var": x_var, "n_fields": schema["n_fields"],
            "label_column": schema["label_column"], "labels": list(schema["labels"])}


def check_input_kind(network: str, x_var: str, what: str) -> None:
    """A network over token ids needs ``tokens``, an image network ``image``; ``what`` says where
    the input comes from, e.g. ``dataset mnist@3f2a stores``."""
    if (x_var == "tokens") != (network in TOKEN_NETWORKS):
        takes = "token ids" if network in TOKEN_NETWORKS else "images"
        fix = ", ".join(TOKEN_NETWORKS) if x_var == "tokens" else "cnn, mlp or transformer"
        raise UserError(f"train.network: {network} takes {takes} but {what} {x_var!r}; set train.network to {fix}")


def plan_input(ref: store.DatasetRef, manifest: dict, network: str) -> dict:
    """The plan's input: variable, shape per sample, vocabulary size and (text) fitted transform."""
    variables = manifest["variables"]
    x_var = "tokens" if "tokens" in variables else "image"
    check_input_kind(network, x_var, f"dataset {ref} stores")
    features = json.loads(store.open_version(ref).attrs["features"])
    vocab_size = 0
    if x_var == "tokens":   # a word vocabulary (sequence) or a subword tokenizer (subword, packed)
        state = next(t for t in features["transforms"] if t["name"] == x_var)["state"]
        vocab_size = int(state["vocab_size"]) if "vocab_size" in state else len(state["vocabulary"])
    return {"x_var": x_var, "input_shape": list(variables[x_var]["shape"][1:]), "vocab_size": vocab_size,
            "transform": transform_of(manifest, features, x_var)}


def plan_for(cfg: JobConfig, ref: store.DatasetRef, run_dir: Path, resume: bool = False) -> TrainPlan:
    """The training plan of ``cfg.train`` on dataset version ``ref``."""
    manifest = ref.manifest()
    return TrainPlan(train=cfg.train, seed=cfg.seed, resume=resume, store=str(ref.data_path),
                     dataset_version=str(ref), ranges=manifest["ranges"],
                     n_classes=len(manifest["config"]["schema"]["labels"]), run_dir=str(run_dir),
                     **plan_input(ref, manifest, cfg.train.network))


def check_objective(objective: str, ref: store.DatasetRef, manifest: dict) -> None:
    """A language-model objective needs a packed corpus (``segment``), a classifier labels."""
    variables = manifest["variables"]
    if objective != "classify" and "segment" not in variables:
        raise UserError(f"train.objective: {objective} pretrains on packed text sequences but dataset {ref} stores "
                        f"none (no segment variable); prepare a corpus with features.groups: [{{kind: packed}}] "
                        "or set train.objective: classify")
    if objective == "classify" and "label" not in variables:
        raise UserError(f"train.objective: classify needs labels but dataset {ref} is an unlabelled packed corpus; "
                        "set train.objective: causal_lm (or masked_lm) with train.network: lm_transformer")


def check_shares(cfg: JobConfig, manifest: dict, world: int) -> None:
    """Every rank must get at least one batch of the train split a step."""
    lo, hi = manifest["ranges"]["train"]
    b = cfg.train.batch_size
    if sharding.steps_per_epoch(hi - lo, world, b) == 0:
        raise UserError(f"train.batch_size: {b} a rank x {world} ranks = {b * world} samples a step, more than the "
                        f"train split holds ({hi - lo}); lower train.batch_size to at most "
                        f"{max((hi - lo) // world, 1)} or --np")


def _resumable(workdir: Workdir, prepared: Prepared, resume: bool | str) -> RunDir:
    """The run ``--resume`` continues: the one named, or the newest run on this dataset version."""
    if isinstance(resume, str):
        run = workdir.run(resume)
    else:
        ours = [r for r in workdir.run_dirs() if r.plan.is_file()
                and json.loads(r.plan.read_text()).get("dataset_version") == str(prepared.ref)]
        if not ours:
            raise UserError(f"--resume: no earlier run on {prepared.ref} in {workdir.runs}; "
                            "run without --resume first")
        run = ours[-1]
    if not run.plan.is_file():
        raise UserError(f"--resume: {run.path} has no {run.plan.name} (it never started training); "
                        "run without --resume")
    if run.metrics.is_file():
        metrics = json.loads(run.metrics.read_text())
        key = "test_accuracy" if metrics.get("test_accuracy") is not None else "test_perplexity"
        raise UserError(f"--resume: run {run.id} is finished ({key} {metrics.get(key)}); nothing to resume, "
                        "run without --resume for a new run")
    return run


@contextlib.contextmanager
def early_ranks(cfg: JobConfig, workdir: Workdir, options: LaunchOptions, watch: Watch | None,
                log=print) -> Iterator[EarlyRanks]:
    """The ranks of the run :func:`train` is about to start, started now, while its data is still
    being prepared (:class:`models.launch.EarlyRanks`): their run folder is made now. When the
    block ends without :func:`train` having handed them a plan (the preparation or a check after it
    failed, or an interrupt), they are cancelled and the folder is removed: it never held a run."""
    had_runs = workdir.runs.is_dir()
    run = workdir.new_run()
    early = EarlyRanks(run, cfg.train.np or default_np(), cfg.train.threads_per_rank, options.launcher,
                       options.hosts, (watch or Watch()).rank_env(run.id), log)
    try:
        yield early
    finally:
        if not early.handed_over:
            early.cancel()
            shutil.rmtree(run.path, ignore_errors=True)
            if not had_runs:
                with contextlib.suppress(OSError):
                    workdir.runs.rmdir()


def _record(run: RunDir, summary: dict) -> dict:
    atomic_write_text(run.summary, json.dumps(summary, indent=2) + "\n")
    return summary


def _summary(run: RunDir, prepared: Prepared, cfg: JobConfig, world: int, started: dict,
             init_model: str | None = None) -> dict:
    m = prepared.manifest
    return {"run_id": run.id, "run_dir": str(run.path), "state": "running", "started": started["at"],
            "dataset_version": str(prepared.ref), "dataset_path": str(prepared.ref.path),
            "dataset_cached": prepared.cached, "n_train": m["n_train"], "n_train_stored": m["n_train_stored"],
            "n_val": m["n_val"], "n_test": m["n_test"], "n_quarantined": sum(m["quarantined"].values()),
            "quarantined": m["quarantined"], "network": cfg.train.network, "world_size": world,
            "compression": cfg.train.compression, "epochs": cfg.train.epochs,
            "prepare_seconds": round(prepared.seconds, 2), "objective": cfg.train.objective,
            "init_from": pretrained.record(init_model),
            "bundle": None if cfg.train.objective != "classify" else str(run.bundle),
            "tensorboard": str(run.tensorboard),
            "report": str(prepared.ref.path / "report.html"), "model": str(run.model),
            "exported_model": None if cfg.train.objective != "classify" else str(run.saved_model)}


#: a language model's test figures (``models.lm``); ``test_accuracy`` is a classifier's only (None here)
LM_FIGURES = ("test_perplexity", "test_token_accuracy")


def _finished(summary: dict, metrics: dict, started: dict) -> dict:
    bundle = {"bundle_note": metrics["bundle_note"]} if metrics.get("bundle_note") else {}
    return {**summary, "state": "finished", "finished": now(),
            "world_size": metrics["world_size"], "compression": metrics["compression"],
            "device": metrics["device"], "attention": metrics.get("attention"),
            "test_accuracy": metrics.get("test_accuracy"),
            "test_loss": metrics["test_loss"], **{k: metrics[k] for k in LM_FIGURES if k in metrics}, **bundle,
            "train_seconds": round(metrics["train_seconds"], 2),
            "restarts": metrics.get("restarts", []),
            "wall_seconds": round(time.perf_counter() - started["clock"], 2)}


def train(cfg: JobConfig, prepared: Prepared, workdir: Workdir, options: LaunchOptions = LaunchOptions(),
          log=print, started: dict | None = None, watch: Watch | None = None,
          early: EarlyRanks | None = None) -> dict:
    """Train on ``prepared`` and return the run's summary (also ``runs/<id>/summary.json``);
    ``watch`` reports it live on a Dask scheduler; ``early``: the run's ranks, started already
    (:func:`early_ranks`), are its first attempt."""
    started = started or start_clock()
    world = cfg.train.np or default_np()
    resumed = _resumable(workdir, prepared, options.resume) if options.resume else None
    store.check_ready(prepared.ref, full=options.verify)
    plan = None
    if resumed is None:
        check_objective(cfg.train.objective, prepared.ref, prepared.manifest)
        check_shares(cfg, prepared.manifest, world)
        plan = plan_for(cfg, prepared.ref, Path())       # its run_dir is set once the folder exists
        if cfg.train.init_from:
            plan = pretrained.resolve(cfg.train.init_from, workdir, plan)
    run = resumed or (early.run if early is not None else workdir.new_run())
    try:
        with run.lock():
            return _train_in(run, cfg, prepared, plan, world, options, log, started, watch or Watch(), early)
    except RunBusy as exc:
        raise UserError(f"--resume: {exc}; wait for it to end, or stop it first") from None


def _train_in(run: RunDir, cfg: JobConfig, prepared: Prepared, plan: TrainPlan | None, world: int,
              options: LaunchOptions, log, started: dict, watch: Watch, early: EarlyRanks | None) -> dict:
    resuming = plan is None
    if resuming:   # the run goes on as it was planned; only the checkpoint is new
        plan = replace(TrainPlan.load(run.plan), resume=True)
        cfg = cfg.with_overrides(train=plan.train.model_dump())
    else:
        atomic_write_text(run.config, dump_yaml(cfg))
        plan = replace(plan, run_dir=str(run.path))
    summary = _record(run, _summary(run, prepared, cfg, world, started, plan.init_model))
    log(f"Run {run.id}: training on {prepared.ref} in {run.path}" + (" (resuming)" if resuming else ""))
    marks = started.setdefault("marks", {"start": time.time() - (time.perf_counter() - started["clock"])})
    marks["launched"] = time.time()
    watch.phase(run.id, "rank start", wait=False)
    try:
        with watch.progress(run.id, log) as shown:
            metrics = launch(plan, world, log=shown, launcher=options.launcher, hosts=options.hosts,
                             extra_env=watch.rank_env(run.id), early=early)
    except TrainingFailed as exc:
        _record(run, {**summary, "state": "failed", "finished": now(), "error": str(exc)})
        if isinstance(exc, PlanRejected):   # the config's mistake, said in one line (models.train._network)
            raise UserError(str(exc)) from None
        raise
    except BaseException:
        _record(run, {**summary, "state": "interrupted", "finished": now()})
        raise
    watch.phase(run.id, "finished")
    marks.update(metrics.get("timeline", {}))
    summary = _finished(summary, metrics, started)
    summary["lineage"] = str(record_run(run.path, prepared.ref, summary))
    summary["history_plot"] = str(plots.write_history_png(run.path))   # loss/accuracy curves (pipeline.plots)
    if watch.client is not None:
        summary["trace"] = str(watch.write_trace(run.path, marks))
    marks["end"] = time.time()
    summary["time_breakdown"] = breakdown(marks)
    summary["wall_seconds"] = round(time.perf_counter() - started["clock"], 2)
    return _record(run, summary)
