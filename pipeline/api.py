"""The Python API: ``pipeline.run(...)`` runs the whole job and returns a typed :class:`RunResult`.

The result is a frozen dataclass with the summary's main fields as attributes (and every field of
``summary.json`` by key, ``result["restarts"]``, as the dict ``pipeline.job.run`` returns), the
paths of the run's files, and two openers: :meth:`RunResult.open_dataset` (the stored version,
lazily, with xarray) and :meth:`RunResult.load_bundle` (the exported serving bundle).

A script may call ``pipeline.run`` at its top level, without an ``if __name__ == "__main__":``
guard: Dask starts its local workers with multiprocessing's *spawn*, which re-runs the main
script in every worker (as ``__mp_main__``), so such a script used to start the job again in each
worker and crash. The workers need nothing from the script (cloudpickle sends functions defined in
``__main__`` by value), so while the job runs, multiprocessing is not told where the script is
(:func:`_script_not_rerun`), exactly as for an interactive session.

>>> import pipeline
>>> result = pipeline.run(pipeline.load_config("my.yaml"), workdir="dcpipe-work")   # doctest: +SKIP
>>> result.test_accuracy, result.dataset_version                                   # doctest: +SKIP
(0.984, 'mnist@c944161c87aa2c80')
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import JobConfig
from pipeline.errors import UserError


@dataclass(frozen=True, eq=False)
class RunResult(Mapping):
    """A finished run: its summary's figures, its files, and openers of its dataset and bundle."""

    run_id: str
    state: str
    dataset_version: str
    network: str
    world_size: int
    compression: str
    n_train: int
    n_val: int
    n_test: int
    n_quarantined: int
    test_accuracy: float | None
    test_loss: float | None
    prepare_seconds: float
    train_seconds: float | None
    wall_seconds: float | None
    run_dir: Path
    dataset_path: Path
    bundle: Path | None              # None for a language-model pretraining run (summary's bundle_note)
    tensorboard: Path
    report: Path
    history_plot: Path | None
    summary: dict = field(repr=False)

    @classmethod
    def from_summary(cls, summary: dict) -> "RunResult":
        """The result of a run's ``summary.json`` (as ``pipeline.job.run`` returns it)."""
        paths = ("run_dir", "dataset_path", "bundle", "tensorboard", "report")
        plot = summary.get("history_plot")
        rest = [k for k in cls.__dataclass_fields__ if k not in (*paths, "history_plot", "summary")]
        return cls(**{k: summary.get(k) for k in rest},
                   **{k: Path(summary[k]) if summary.get(k) else None for k in paths},
                   history_plot=Path(plot) if plot and plot != "None" else None, summary=dict(summary))

    def open_dataset(self):
        """The run's dataset version as a lazy ``xarray.Dataset`` (see ``manifest.json`` ``ranges``)."""
        from pipeline.store import DatasetRef, open_version
        path = self.dataset_path
        return open_version(DatasetRef(root=path.parent.parent, name=path.parent.name, version=path.name))

    def load_bundle(self):
        """The exported serving bundle: ``bundle.predict(records)`` gives labels (``models.export``)."""
        from models.export import load_bundle
        if self.bundle is None:
            raise UserError(f"run {self.run_id}: {self.summary.get('bundle_note') or 'no serving bundle'}")
        return load_bundle(self.bundle)

    # the summary's fields by key, as the dict that pipeline.job.run returns
    def __getitem__(self, key: str):
        return self.summary[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.summary)

    def __len__(self) -> int:
        return len(self.summary)


@contextlib.contextmanager
def _script_not_rerun() -> Iterator[None]:
    """While the job runs, multiprocessing does not re-run the main script in Dask's spawned workers.

    multiprocessing's spawn re-runs ``__main__`` in a child when the module has a ``__spec__`` (``python
    -m``) or a ``__file__`` (``python script.py``); an interactive session has neither. Both are hidden
    for the duration and put back after.
    """
    main = sys.modules.get("__main__")
    hidden = {k: getattr(main, k) for k in ("__file__", "__spec__") if getattr(main, k, None) is not None}
    if main is None or not hidden or getattr(main, "__name__", "") != "__main__":
        yield
        return
    for k in hidden:
        setattr(main, k, None) if k == "__spec__" else delattr(main, k)
    try:
        yield
    finally:
        for k, v in hidden.items():
            setattr(main, k, v)


def run(config: JobConfig | None = None, workdir: str | Path = "dcpipe-work", *, client=None,
        **options) -> RunResult:
    """Run the whole job (prepare, then train) and return its :class:`RunResult`.

    ``client``: an existing ``distributed.Client`` to prepare on (it is left running); without one a
    cluster of ``config.cluster`` starts and stops. ``options`` are those of :func:`pipeline.job.run`:
    ``np``, ``epochs``, ``compression``, ``workers``, ``cluster``, ``dataset``, ``launcher``, ``hosts``,
    ``resume``, ``verify``, ``log``, ``show_progress``.
    """
    from pipeline.job import run as run_job
    with _script_not_rerun():
        return RunResult.from_summary(run_job(config, workdir=workdir, client=client, **options))
