"""Launch training: write the plan, start ``horovodrun`` with N ranks, stream its output."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from models.plan import TrainPlan


class TrainingFailed(RuntimeError):
    """The ranks exited non-zero; the message names the log to read."""


def new_run_dir(workdir: Path) -> Path:
    """A fresh ``<workdir>/runs/<UTC time>-<random>``."""
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    run_dir = Path(workdir) / "runs" / run_id
    run_dir.mkdir(parents=True)
    return run_dir


def gpu_count() -> int:
    """GPUs on this node, without importing TensorFlow in the launching process."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU ")) if out.returncode == 0 else 0


def default_np() -> int:
    """One rank per GPU, or 2 CPU ranks."""
    return gpu_count() or 2


def horovodrun_command(np: int, plan_path: Path) -> list[str]:
    """``horovodrun -np N -H localhost:N --gloo python -m models.train PLAN``."""
    horovodrun = Path(sys.executable).with_name("horovodrun")
    return [str(horovodrun if horovodrun.exists() else "horovodrun"), "-np", str(np), "-H", f"localhost:{np}",
            "--gloo", sys.executable, "-m", "models.train", str(plan_path)]


def rank_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2",
                "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                               env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    return env


def launch(plan: TrainPlan, np: int, log=print) -> dict:
    """Run the ranks; return rank 0's metrics. Output goes to the console and ``train.log``."""
    run_dir = Path(plan.run_dir)
    plan_path = plan.save(run_dir / "train_plan.json")
    cmd = horovodrun_command(np, plan_path)
    log(f"Horovod: {' '.join(cmd[:7])} ... ({np} ranks)")
    with open(run_dir / "train.log", "a") as out, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=rank_env(plan.threads_per_rank),
            cwd=run_dir) as proc:
        for line in proc.stdout:
            out.write(line)
            if "[train]" in line or "Error" in line or "error" in line:
                log(line.rstrip())
    if proc.returncode != 0:
        raise TrainingFailed(f"training exited with code {proc.returncode}; see {run_dir / 'train.log'}")
    return json.loads((run_dir / "metrics.json").read_text())
