"""Atomic publish against real processes: two writers at once, and writers killed with SIGKILL."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import store
from pipeline.errors import UserError
from tests.pipeline.store_data import VERSION, publish_tiny

REPO = Path(__file__).resolve().parents[2]
WORKER = """
import os, signal, sys, time
from pathlib import Path
root, mode, delay = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
from tests.pipeline.store_data import publish_tiny
if mode == "die-before-commit":    # SIGKILL ourselves at the commit rename, after everything else
    sys.modules["pipeline.store.writer"].os.rename = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
(root / f"ready-{os.getpid()}").touch()
while not (root / "go").exists():
    time.sleep(0.01)
pub = publish_tiny(root, delay=delay)
print("reused" if pub.reused else "published", flush=True)
"""


def _start(root: Path, mode: str = "publish", delay: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), mode, str(delay)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _go(root: Path, procs: list, timeout: float = 120) -> None:
    """Release the workers together once all have imported everything."""
    deadline = time.monotonic() + timeout
    while len(list(root.glob("ready-*"))) < len(procs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "workers did not start"
        time.sleep(0.05)
    (root / "go").touch()


def _staging(root: Path) -> list[Path]:
    return list((root / "tiny").glob(".staging-*"))


def _assert_not_visible(root: Path) -> None:
    ref = store.DatasetRef(root, "tiny", VERSION)
    assert not ref.exists() and not ref.path.exists()
    assert store.versions(root, "tiny") == [] and store.catalog(root) == {}
    with pytest.raises(UserError, match="no versions"):
        store.resolve(root, "tiny")


def test_two_processes_publishing_the_same_version_at_once(tmp_path):
    procs = [_start(tmp_path, delay=0.1) for _ in range(2)]
    _go(tmp_path, procs)
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert sorted(out.strip() for out, _ in outs) == ["published", "reused"]
    ref = store.DatasetRef(tmp_path, "tiny", VERSION)
    assert [r.version for r in store.versions(tmp_path, "tiny")] == [VERSION]
    assert _staging(tmp_path) == [] and store.verify(ref) == []


def _kill_when_chunks_appear(proc: subprocess.Popen, root: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list((root / "tiny").glob(".staging-*/data.zarr/image/c/*")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the writer wrote no chunk"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("when", ["mid-write", "before-commit"])
def test_a_writer_killed_leaves_no_visible_version_and_the_next_run_recovers(tmp_path, when):
    if when == "mid-write":     # killed by us while its chunks are being written (1 s per block)
        proc = _start(tmp_path, delay=1.0)
        _go(tmp_path, [proc])
        _kill_when_chunks_appear(proc, tmp_path)
    else:                       # kills itself with everything written but the commit rename
        proc = _start(tmp_path, mode="die-before-commit")
        _go(tmp_path, [proc])
        proc.wait(timeout=180)
        staged = _staging(tmp_path)
        assert len(staged) == 1 and (staged[0] / "manifest.json").is_file()
    assert proc.returncode == -signal.SIGKILL
    assert len(_staging(tmp_path)) == 1           # the dead writer's half version, hidden
    _assert_not_visible(tmp_path)

    # the next run: its lock is free (flock died with the writer); it cleans up and publishes
    (tmp_path / "go").unlink()
    nxt = _start(tmp_path)
    _go(tmp_path, [nxt])
    out, err = nxt.communicate(timeout=180)
    assert nxt.returncode == 0 and out.strip() == "published", err[-2000:]
    assert _staging(tmp_path) == [] and store.verify(store.DatasetRef(tmp_path, "tiny", VERSION)) == []


def test_readers_never_see_a_version_while_it_is_written(tmp_path):
    proc = _start(tmp_path, delay=0.3)
    _go(tmp_path, [proc])
    seen = set()
    while proc.poll() is None:
        for ref in store.versions(tmp_path, "tiny"):
            seen.add(len(store.verify(ref)))    # any version a reader can see is complete
        time.sleep(0.05)
    assert proc.returncode == 0 and seen <= {0}
    assert publish_tiny(tmp_path).reused
