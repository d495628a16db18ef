"""Helpers shared by the models tests: run a script under a real ``horovodrun -np 2 --gloo``."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def horovodrun() -> str:
    local = Path(sys.executable).with_name("horovodrun")
    found = str(local) if local.exists() else shutil.which("horovodrun")
    if not found:
        pytest.skip("horovodrun is not installed (pip install horovod, see stack.md)")
    return found


def rank_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def run_two_ranks(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [horovodrun(), "-np", "2", "-H", "localhost:2", "--gloo", sys.executable, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=rank_env(), cwd=REPO, timeout=timeout)


def plan_of(ref, run_dir, seed: int = 0, **train):
    """The TrainPlan of an image dataset version ``ref`` (``pipeline.store.DatasetRef``) with the
    given ``train`` settings, built as the application layer builds it."""
    from models.config import TrainConfig
    from models.plan import TrainPlan
    manifest = ref.manifest()
    schema = manifest["config"]["schema"]
    transform = {"kind": "pixel_scale", "value_min": schema["value_min"], "value_max": schema["value_max"],
                 "image_shape": list(schema["image_shape"]), "n_fields": schema["n_fields"],
                 "label_column": schema["label_column"], "labels": list(schema["labels"])}
    return TrainPlan(train=TrainConfig(**train), seed=seed, store=str(ref.data_path), dataset_version=str(ref),
                     ranges=manifest["ranges"], input_shape=list(manifest["variables"]["image"]["shape"][1:]),
                     n_classes=len(schema["labels"]), run_dir=str(run_dir), transform=transform)


def rank_pids(plan_path) -> dict[int, int]:
    """HOROVOD_RANK -> pid of the running ``python -m models.train PLAN`` ranks of one run."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"models.train" not in argv or str(plan_path).encode() not in argv or b"python" not in argv[0]:
                continue
            env = dict(v.split(b"=", 1) for v in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") if b"=" in v)
            found[int(env[b"HOROVOD_RANK"])] = int(entry)
        except (OSError, KeyError, ValueError):
            continue
    return found
