"""Checkpoints: model weights, optimizer state and the run's position, written atomically.

Layout under ``<run_dir>/checkpoints``::

    step-000000123/model.weights.h5   Keras weights
    step-000000123/optimizer.npz      optimizer variables, in ``optimizer.variables`` order
    step-000000123/state.json         {"epoch": E, "batches_consumed": C, "global_step": G}

``(epoch, batches_consumed)`` is the loader position, the same at every world size: the global
batches ``0 .. C-1`` of epoch ``E`` are trained on (``models.sharding``); ``global_step`` counts the
optimizer steps taken. A checkpoint is written under a temporary name and renamed into place, so
:func:`latest` never sees half of one. No pickle: arrays as ``.npz``, state as JSON.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Position:
    """Where training stands: ``batches_consumed`` global batches of ``epoch`` done; ``global_step`` steps."""

    epoch: int
    batches_consumed: int
    global_step: int

    @classmethod
    def from_state(cls, state: dict, world: int = 1) -> "Position":
        """A position from ``state.json``; one written before positions were world-independent has
        ``step`` (per-rank steps), read as ``step * world`` batches."""
        consumed = state["batches_consumed"] if "batches_consumed" in state else state["step"] * world
        return cls(state["epoch"], consumed, state["global_step"])


def folder(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save(run_dir: Path, model, optimizer, position: Position, keep: int = 2) -> Path:
    """Write one checkpoint; keep the ``keep`` newest."""
    root = folder(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{position.global_step:09d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_weights(tmp / "model.weights.h5")
    np.savez(tmp / "optimizer.npz", *[np.asarray(v.numpy()) for v in optimizer.variables])
    (tmp / "state.json").write_text(json.dumps(asdict(position)) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = sorted(p for p in folder(run_dir).glob("step-*") if (p / "state.json").is_file())
    return found[-1] if found else None


def read_position(path: Path, world: int = 1) -> Position:
    """The position a checkpoint holds, without loading it."""
    return Position.from_state(json.loads((Path(path) / "state.json").read_text()), world)


def restore(path: Path, model, optimizer, world: int = 1) -> Position:
    """Load weights and optimizer state (the optimizer must be built); return the position
    (``world``: the resuming world size, for a checkpoint of the old form)."""
    model.load_weights(path / "model.weights.h5")
    with np.load(path / "optimizer.npz", allow_pickle=False) as arrays:
        values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    if len(values) != len(optimizer.variables):
        raise ValueError(f"{path}: checkpoint has {len(values)} optimizer variables, the optimizer "
                         f"{len(optimizer.variables)}; was it written for another network?")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)
    return read_position(path, world)
