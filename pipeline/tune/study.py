"""A study's storage and strategy: Optuna's journal file in the workdir, the sampler, the pruner,
and what a restart does with the trials a killed ``dcpipe tune`` left running.

Layout, owned here::

    <workdir>/studies/<name>/journal.log    Optuna's JournalStorage (a file; every process appends)
    <workdir>/studies/<name>/trials/<n>/    one trial's spec.json, trial.log, result.json
    <workdir>/studies/<name>/.lock          flock(2) held by the one dcpipe tune driving the study

A restart keeps every finished trial (complete, pruned, failed); a trial still RUNNING in the
journal was running when its driver died: it is marked FAIL (``interrupted``) and its parameters
are queued again, so it is retried first.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from pipeline.errors import UserError

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

#: the objective: maximised, read from each epoch's record in history.json
METRIC = "val_accuracy"
#: a user attribute set on a trial its dead driver left RUNNING
INTERRUPTED = "interrupted"


def folder_of(workdir: Path, name: str) -> Path:
    return Path(workdir) / "studies" / name


def journal_of(folder: Path) -> Path:
    return folder / "journal.log"


def storage_of(journal: str | Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(journal)))


def sampler_of(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """tune.sampler: tpe | random | cmaes | nsga2."""
    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
                "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
                "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=8)}
    return samplers[kind]()


def pruner_of(kind: str, epochs: int) -> optuna.pruners.BasePruner:
    """tune.pruner: hyperband | successive_halving | none; the resource is the epoch."""
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


@contextlib.contextmanager
def driving(folder: Path) -> Iterator[None]:
    """Hold the study's lock: one ``dcpipe tune`` drives a study at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder}: study {folder.name} is being run by another dcpipe tune; wait for it "
                            "to end, or give another --study") from None
        yield
    finally:
        os.close(fd)


def open_study(folder: Path, name: str, sampler: str, pruner: str, seed: int, epochs: int) -> optuna.Study:
    """The study in ``folder`` (created, or loaded to continue). The sampler's seed moves on with the
    trials already held, so a continued random search does not repeat its first points."""
    storage = storage_of(journal_of(folder))
    existing = {s.study_name: s._study_id for s in storage.get_all_studies()}
    held = storage.get_n_trials(existing[name]) if name in existing else 0
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="maximize",
                               sampler=sampler_of(sampler, seed + held), pruner=pruner_of(pruner, epochs))


def retry_interrupted(study: optuna.Study) -> list[int]:
    """Mark the trials left RUNNING by a dead driver FAIL (``interrupted``) and queue their
    parameters again; the numbers of the trials retried."""
    storage, retried = study._storage, []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        retried.append(trial.number)
    return retried


def counted(study: optuna.Study) -> int:
    """Trials that count towards tune.trials: complete, pruned, or failed on their own."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED)))


def open_trial(spec) -> optuna.Trial:
    """In a trial's process: the running trial ``spec`` names (``pipeline.tune.trials.TrialSpec``),
    with the study's pruner, to report to and ask."""
    study = optuna.load_study(study_name=spec.study, storage=storage_of(spec.journal),
                              pruner=pruner_of(**spec.pruner))
    return optuna.trial.Trial(study, spec.trial_id)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The complete trial with the highest val accuracy; None before one completes."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None
