"""``dcpipe tune``: drive a study on the Dask cluster dcpipe starts.

The driver asks the study for a point (``study.ask``), applies it to the config, and submits the
trial as the task ``tune-trial-<n>`` (``pipeline.tune.trials.run_trial``) with the worker
resource ``tune-trial: 1``, so a worker runs one trial at a time (local workers: one per core, or
one per ``tune.np`` cores). Every trial reads the same prepared dataset version, prepared once
before the first trial (a cache hit when it is already stored); with ``tune.prepare: true`` each
distinct data config is prepared once, in the driver, before its trial starts. Results are told
to the study as they come back; the study's files are written at the end (``pipeline.tune.report``).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import dask
from distributed import wait

from models.rundir import RunDir
from pipeline.cluster import dask_client
from pipeline.config import JobConfig, parse_config
from pipeline.errors import UserError
from pipeline.prepare import Prepared, locate, prepare
from pipeline.tune import study as studies
from pipeline.tune.space import check_values, merge, parse_space, suggest
from pipeline.tune.trials import TrialSpec, run_trial
from pipeline.workdir import Workdir

#: the Dask worker resource one trial holds
RESOURCE = "tune-trial"
TOLD = {"finished": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "interrupted": "FAIL"}


@dataclass(frozen=True)
class Outcome:
    """What ``dcpipe tune`` ends with."""

    study: str
    folder: Path
    best_run: str | None
    best_value: float | None
    best_bundle: str | None
    counted: int


def apply(cfg: JobConfig, params: dict) -> JobConfig:
    """``cfg`` with a trial's ``params`` (``{"train.learning_rate": 3e-3, ...}``) set."""
    data = cfg.to_dict()
    for key, value in params.items():
        data = merge(data, tuple(key.split(".")), value)
    return parse_config(data, origin="tune trial")


def _trial_config(cfg: JobConfig) -> JobConfig:
    """Every trial trains with tune.np ranks, one core each (a trial's slot is tune.np cores)."""
    return cfg.with_overrides(train={"np": cfg.tune.np, "threads_per_rank": cfg.train.threads_per_rank or 1})


def _cluster(cfg: JobConfig) -> JobConfig:
    """Local workers: one per trial slot (cores / tune.np) unless cluster.workers says."""
    if cfg.cluster.kind == "local" and cfg.cluster.workers is None:
        return cfg.with_overrides(cluster={"workers": max(1, (os.cpu_count() or 1) // cfg.tune.np)})
    return cfg


def _prepared(cfg: JobConfig, work: Workdir, client, log, cache: dict) -> Prepared:
    """The version ``cfg``'s data sections make: prepared on ``client`` once, then a cache hit."""
    key = repr(cfg.data_part())
    if key not in cache:
        located = locate(cfg, work.datasets, log)
        cache[key] = located.cached or prepare(cfg, work.datasets, client, log=log, show_progress=False,
                                               located=located)
    return cache[key]


def _slots(client) -> tuple[int, dict]:
    """(trials at once, the resources a trial asks for): one per worker that offers RESOURCE;
    a cluster whose workers offer none runs one trial per worker, unconstrained."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    offering = sum(int(w.get("resources", {}).get(RESOURCE, 0)) for w in workers)
    return (offering, {RESOURCE: 1}) if offering else (max(1, len(workers)), {})


class Driver:
    """One ``dcpipe tune`` session over a study."""

    def __init__(self, cfg: JobConfig, work: Workdir, name: str, target: int, log=print):
        self.cfg, self.work, self.name, self.target, self.log = cfg, work, name, target, log
        self.folder = studies.folder_of(work.path, name)
        try:
            check_values(cfg, cfg.tune.space)     # the default space too (JobConfig checks only a given one)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.space = parse_space(cfg.tune.space, cfg.tune.prepare)
        self.pending: dict = {}            # future -> (trial, started)
        self.cache: dict = {}
        self.shared: Prepared | None = None

    def run(self) -> Outcome:
        from pipeline.tune import report
        with studies.driving(self.folder):
            tune = self.cfg.tune
            self.study = studies.open_study(self.folder, self.name, tune.sampler, tune.pruner, tune.seed,
                                            self.cfg.train.epochs)
            retried = studies.retry_interrupted(self.study)
            if retried:
                self.log(f"tune: trial(s) {', '.join(map(str, retried))} were running when the study stopped: "
                         "marked failed, retried first")
            done = studies.counted(self.study)
            self.log(f"tune: study {self.name} ({self.folder}): {done} of {self.target} trials done; "
                     f"sampler {tune.sampler}, pruner {tune.pruner}, {len(self.space)} key(s) vary")
            if done < self.target:
                self._search(done)
            best = report.write(self.study, self.cfg, self.folder, self.log)
        run = best.user_attrs.get("run_dir") if best else None
        return Outcome(self.name, self.folder, best and best.user_attrs.get("run_id"), best and best.value,
                       run and str(RunDir(Path(run)).bundle), studies.counted(self.study))

    def _search(self, done: int) -> None:
        cluster_cfg = _cluster(self.cfg)
        with dask.config.set({"distributed.worker.resources": {RESOURCE: 1}}), \
                dask_client(cluster_cfg.cluster, log=self.log) as client:
            if not self.cfg.tune.prepare:
                self.shared = _prepared(self.cfg, self.work, client, self.log, self.cache)
                self.log(f"tune: every trial reads {self.shared.ref}")
            slots, resources = _slots(client)
            while self.wanted(done) or self.pending:
                while len(self.pending) < slots and self.wanted(done):
                    done += self._submit(client, resources)
                if self.pending:
                    finished, _ = wait(list(self.pending), return_when="FIRST_COMPLETED")
                    done += sum(self._tell(future) for future in finished)

    def wanted(self, done: int) -> bool:
        """Another trial should start (``done`` trials counted, ``self.pending`` running)."""
        return done + len(self.pending) < self.target

    def _submit(self, client, resources: dict) -> int:
        """Start the next trial; 1 when its config is refused (it is told FAIL at once, and counts)."""
        trial = self.study.ask()
        params = suggest(self.space, trial)
        try:
            cfg = _trial_config(apply(self.cfg, params))
        except UserError as exc:
            self.log(f"tune: trial {trial.number}: {exc}")
            trial.set_user_attr("error", str(exc))
            self.study.tell(trial, state=studies.TrialState.FAIL)
            return 1
        prepared = self.shared or _prepared(cfg, self.work, client, self.log, self.cache)
        spec = TrialSpec(study=self.name, number=trial.number, trial_id=trial._trial_id,
                         journal=str(studies.journal_of(self.folder)),
                         pruner={"kind": self.cfg.tune.pruner, "epochs": self.cfg.train.epochs},
                         workdir=str(self.work.path), dataset=str(prepared.ref), config=cfg.to_dict(),
                         params=params, driver_pid=os.getpid(),
                         folder=str(self.folder / "trials" / str(trial.number)))
        spec.save()
        trial.set_user_attr("dataset", str(prepared.ref))
        future = client.submit(run_trial, asdict(spec), key=f"tune-trial-{trial.number}", pure=False,
                               resources=resources or None)
        self.pending[future] = (trial, time.perf_counter())
        self.log(f"tune: trial {trial.number} started: {_shown(params)}")
        return 0

    def _tell(self, future) -> int:
        trial, started = self.pending.pop(future)
        try:
            result = future.result()
        except Exception as exc:   # noqa: BLE001 - a trial's crash is that trial's failure, not the study's
            result = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
        for key in ("run_id", "run_dir", "test_accuracy", "epochs_done", "error"):
            if result.get(key) is not None:
                trial.set_user_attr(key, result[key])
        state = getattr(studies.TrialState, TOLD[result["state"]])
        value = result.get("value") if state == studies.TrialState.COMPLETE else None
        if state == studies.TrialState.COMPLETE and value is None:
            state = studies.TrialState.FAIL
        self.study.tell(trial, value, state=state)
        best = studies.best_trial(self.study)
        shown = f"val_accuracy {result['value']:.4f}" if result.get("value") is not None else result.get("error", "")
        self.told(result)
        self.log(f"tune: trial {trial.number} {result['state']} after {result.get('epochs_done', 0)} epoch(s), "
                 f"{shown} (run {result.get('run_id')}, {time.perf_counter() - started:.0f} s); best so far: "
                 + (f"{best.value:.4f} (trial {best.number})" if best else "none"))
        return 1


    def told(self, result: dict) -> None:
        """A hook: a trial's result, once told to the study."""


def _shown(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def tune(cfg: JobConfig, workdir: str | Path = "dcpipe-work", trials: int | None = None,
         study: str | None = None, log=print) -> Outcome:
    """Run (or continue) the study of ``cfg.tune`` until it holds ``trials`` counted trials."""
    work = Workdir.open(workdir)
    name = study or cfg.tune.study or cfg.dataset.name
    if study is not None:
        parse_config({**cfg.to_dict(), "tune": {**cfg.to_dict()["tune"], "study": study}}, origin="--study")
    return Driver(cfg, work, name, trials or cfg.tune.trials, log).run()
