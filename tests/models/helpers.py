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
