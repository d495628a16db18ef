"""Shared fixtures: tiny real data cut from the embedded MNIST file, and small configs."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import JobConfig
from pipeline.ingest import embedded_mnist_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_lines() -> list[str]:
    """The 5,000 lines of the embedded MNIST CSV (784 pixels, then the label)."""
    with gzip.open(embedded_mnist_path(), "rt") as fh:
        return fh.read().splitlines()


def take_balanced(lines: list[str], per_class: int) -> list[str]:
    """``per_class`` lines of each digit, in file order."""
    labels = np.array([int(line.rsplit(",", 1)[1]) for line in lines])
    keep = np.sort(np.concatenate([np.flatnonzero(labels == d)[:per_class] for d in range(10)]))
    return [lines[i] for i in keep]


@pytest.fixture
def small_csv(tmp_path: Path, mnist_lines) -> Path:
    """A 400-row real MNIST CSV (40 per digit), uncompressed."""
    path = tmp_path / "mnist_small.csv"
    path.write_text("\n".join(take_balanced(mnist_lines, 40)) + "\n")
    return path


def small_config(csv: Path, **sections) -> JobConfig:
    """A config for tiny runs: the given CSV, one augmented copy, small chunks, one epoch, a free dashboard port."""
    base = {"source": {"path": str(csv)}, "store": {"chunk_rows": 64}, "augment": {"copies": 1},
            "train": {"epochs": 1, "batch_size": 16, "np": 2},
            "cluster": {"workers": 2, "dashboard_address": ":0"}}
    for name, fields in sections.items():
        base[name] = {**base.get(name, {}), **fields}
    return JobConfig.model_validate(base)


def prepare_small(folder: Path, lines: list[str], per_class: int = 20):
    """(config, workdir, Prepared): ``per_class`` real rows of each digit prepared under
    ``folder/work`` (no augmentation, 64-row chunks, one Dask worker)."""
    from pipeline.job import prepare_only
    csv = folder / "small.csv"
    csv.write_text("\n".join(take_balanced(lines, per_class)) + "\n")
    cfg = small_config(csv, augment={"copies": 0}, cluster={"workers": 1})
    return cfg, folder / "work", prepare_only(cfg, folder / "work", log=lambda *_: None, show_progress=False)
