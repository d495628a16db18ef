"""One trial of a study: a Dask task (``tune-trial-<n>``) that runs a real dcpipe run in a fresh process.

The task (:func:`run_trial`, on a Dask worker) starts ``python -m pipeline.tune.trials SPEC.json``;
that process trains through the one training path (``pipeline.training.train``: its own run
folder, ``summary.json``, ``lineage.json``) on the study's prepared dataset version, and a watcher
thread reads the run's ``history.json`` as rank 0 writes it each epoch, reports the validation
accuracy to the study (Optuna's journal file, shared by every process) and asks its pruner. A
pruned trial stops its ranks as SIGTERM does (``models.supervise``) and its run is recorded as
``pruned``. The process also stops, recording the run as interrupted, once ``dcpipe tune`` or its
Dask worker is gone: a killed study leaves no training behind.

A fresh process per trial also keeps Keras' memory from piling up over a study.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from models.rundir import RunDir, atomic_write_text
from models.supervise import process_alive
from pipeline.workdir import Workdir


@dataclass(frozen=True, kw_only=True)
class TrialSpec:
    """What a trial process needs, written as JSON next to the study's journal."""

    study: str
    number: int
    trial_id: int
    journal: str                 # the study's journal.log
    pruner: dict                 # pipeline.tune.study.pruner_of's argument
    workdir: str
    dataset: str                 # NAME@VERSION of the prepared version every trial reads
    config: dict                 # the trial's full JobConfig mapping (its params applied)
    params: dict
    driver_pid: int              # the dcpipe tune process
    folder: str                  # studies/<name>/trials/<n>/: spec, log, result

    @property
    def path(self) -> Path:
        return Path(self.folder) / "spec.json"

    @property
    def result(self) -> Path:
        return Path(self.folder) / "result.json"

    @property
    def log(self) -> Path:
        return Path(self.folder) / "trial.log"

    def save(self) -> Path:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        return atomic_write_text(self.path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrialSpec":
        return cls(**json.loads(Path(path).read_text()))


def run_trial(spec: dict) -> dict:
    """The Dask task: run the trial's process to its end; its result (``result.json``)."""
    trial = TrialSpec(**spec)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    trial.result.unlink(missing_ok=True)
    with open(trial.log, "a") as out:
        code = subprocess.run([sys.executable, "-m", "pipeline.tune.trials", str(trial.path)], stdout=out,
                              stderr=subprocess.STDOUT, env=env, check=False).returncode
    if not trial.result.is_file():
        return {"state": "failed", "error": f"trial process exited with code {code}; see {trial.log}"}
    return json.loads(trial.result.read_text())


class _TrialWorkdir(Workdir):
    """The workdir, remembering the run folder the training path makes (the watcher's hook)."""

    def new_run(self) -> RunDir:
        run = super().new_run()
        object.__setattr__(self, "made", run)
        return run


class _Watcher(threading.Thread):
    """Reports each new epoch's val accuracy to the study; prunes; ends the trial with its parents."""

    def __init__(self, spec: TrialSpec, work: _TrialWorkdir, epochs: int, interval: float = 0.5):
        super().__init__(name="tune-trial-watcher", daemon=True)
        self.spec, self.work, self.epochs, self.interval = spec, work, epochs, interval
        self.reported, self.pruned, self.orphaned = 0, False, False
        self.done = threading.Event()
        self.parent = os.getppid()
        from pipeline.tune.study import open_trial
        self.trial = open_trial(spec)

    def report(self, may_prune: bool) -> None:
        run = getattr(self.work, "made", None)
        if run is None or not run.history.is_file():
            return
        try:
            history = json.loads(run.history.read_text())
        except ValueError:         # written atomically; a partial read cannot happen, a stale one can
            return
        for record in history[self.reported:]:
            self.trial.report(record["val_accuracy"], record["epoch"])
            self.reported = record["epoch"]
            print(f"[tune] trial {self.spec.number} epoch {record['epoch']}: val_accuracy "
                  f"{record['val_accuracy']:.4f}", flush=True)
            if may_prune and record["epoch"] < self.epochs and self.trial.should_prune():
                self.pruned = True
                print(f"[tune] trial {self.spec.number} pruned after epoch {record['epoch']}", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)     # the training path ends the ranks and records it
                return

    def run(self) -> None:
        while not self.done.wait(self.interval):
            if not process_alive(self.spec.driver_pid) or os.getppid() != self.parent:
                self.orphaned = True
                print(f"[tune] dcpipe tune (pid {self.spec.driver_pid}) is gone; stopping trial", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            if not self.pruned:
                self.report(may_prune=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _tag(run: RunDir | None, spec: TrialSpec, state: str) -> None:
    """Mark the run's record with its study and trial (and its true state: pruned)."""
    if run is None or not run.summary.is_file():
        return
    summary = json.loads(run.summary.read_text())
    summary.update({"study": spec.study, "trial": spec.number, "params": spec.params})
    if state == "pruned":
        summary["state"] = "pruned"
    atomic_write_text(run.summary, json.dumps(summary, indent=2) + "\n")


def execute(spec: TrialSpec, log=print) -> dict:
    """Train the trial's run in this process; the result the driver tells the study."""
    from models.launch import TrainingFailed
    from pipeline.config import parse_config
    from pipeline.errors import UserError
    from pipeline.job import existing_version
    from pipeline.training import config_for, train

    work = _TrialWorkdir(Path(spec.workdir))
    prepared = existing_version(work.path, spec.dataset)
    cfg = config_for(prepared, parse_config(spec.config, origin=f"trial {spec.number}"))
    watcher = _Watcher(spec, work, cfg.train.epochs)
    watcher.start()
    result = {"number": spec.number, "params": spec.params}
    try:
        summary = train(cfg, prepared, work, log=log)
        watcher.done.set()
        watcher.report(may_prune=False)          # the epochs the watcher had not seen yet
        result.update(state="finished", test_accuracy=summary["test_accuracy"],
                      wall_seconds=summary["wall_seconds"])
    except (TrainingFailed, UserError) as exc:
        result.update(state="failed", error=str(exc))
    except (KeyboardInterrupt, SystemExit):
        result.update(state="pruned" if watcher.pruned else "interrupted")
    finally:
        watcher.done.set()
    run = getattr(work, "made", None)
    history = json.loads(run.history.read_text()) if run and run.history.is_file() else []
    result.update(run_id=run.id if run else None, run_dir=str(run.path) if run else None,
                  epochs_done=len(history), value=history[-1]["val_accuracy"] if history else None)
    _tag(run, spec, result["state"])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m pipeline.tune.trials SPEC.json", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    spec = TrialSpec.load(Path(argv[0]))
    result = execute(spec)
    atomic_write_text(spec.result, json.dumps(result, indent=2) + "\n")
    print(f"[tune] trial {spec.number}: {result['state']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
