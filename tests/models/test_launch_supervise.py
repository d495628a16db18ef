"""models.launch supervision without Horovod: restart arithmetic, the restart loop over a stand-in
launcher, signals to the launching process, the plan on disk, and the ranks' watchdog."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from models import launch as launch_mod
from models.config import TrainConfig
from models.launch import RunFinished, TrainingFailed, launch, restart_world
from models.supervise import descendants, end_processes, process_alive, run_processes
from models.plan import TrainPlan
from tests.models.helpers import REPO, rank_env


@pytest.mark.parametrize("np, hosts, min_np, up, expected", [
    (2, None, None, set(), (2, None)),                                   # one machine: same size
    (4, "a:2,b:2", None, {"a", "b"}, (4, "a:2,b:2")),                    # every host answers: same hosts
    (4, "a:2,b:2", 2, {"a"}, (2, "a:2")),                                # b lost: what is left, >= min_np
    (4, "localhost:2,b:2", 1, set(), (2, "localhost:2")),                # the local host is never probed
    (3, "a:2,b:2", 2, {"b"}, (2, "b:2")),                                # np below the slots: at most what is left
])
def test_restart_world_keeps_the_hosts_that_answer(np, hosts, min_np, up, expected):
    assert restart_world(np, hosts, min_np, answers=lambda host: host in up) == expected


@pytest.mark.parametrize("np, hosts, min_np, up, message", [
    # min_np null means np: losing any slot is fatal
    (4, "a:2,b:2", None, {"a"}, r"restart: host\(s\) b no longer answer ssh; 2 slot\(s\) left, fewer than "
                                r"train.min_np 4; bring the hosts back or lower train.min_np"),
    # every host lost
    (4, "a:2,b:2", 1, set(), r"host\(s\) a, b no longer answer ssh; 0 slot\(s\) left"),
])
def test_restart_world_refuses_fewer_than_min_np(np, hosts, min_np, up, message):
    with pytest.raises(TrainingFailed, match=message):
        restart_world(np, hosts, min_np, answers=lambda host: host in up)


def test_a_malformed_host_list_says_what_is_expected():
    with pytest.raises(ValueError, match=r"hosts 'a:2,b': 'b' is not HOST:SLOTS with SLOTS >= 1; e.g. node1:2"):
        launch_mod.parse_hosts("a:2,b")


def _plan(tmp_path, **train) -> TrainPlan:
    return TrainPlan(train=TrainConfig(**train), store="s.zarr", dataset_version="d@0123456789abcdef",
                     ranges={"train": [0, 10]}, input_shape=[8], n_classes=2, run_dir=str(tmp_path), seed=3)


def test_the_plan_round_trips_through_json_and_carries_the_settings_once(tmp_path):
    plan = _plan(tmp_path, epochs=3, logical_shards=4)
    path = plan.save(tmp_path / "train_plan.json")
    assert TrainPlan.load(path) == plan
    raw = json.loads(path.read_text())
    assert raw["train"] == TrainConfig(epochs=3, logical_shards=4).model_dump() and "epochs" not in raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_plan.json"]       # no temporary file left
    assert (plan.epochs, plan.batch_size, plan.logical_shards) == (3, TrainConfig().batch_size, 4)


def test_a_plan_written_before_the_settings_moved_still_loads(tmp_path):
    old = {"store": "s.zarr", "dataset_version": "d@v", "ranges": {}, "input_shape": [8], "n_classes": 2,
           "run_dir": str(tmp_path), "network": "mlp", "epochs": 8, "batch_size": 32, "learning_rate": 0.001,
           "compression": "fp16", "threads_per_rank": 1, "shuffle_buffer": 4096, "read_threads": 4,
           "checkpoint_every": 0, "resume": False, "seed": 0, "x_var": "image", "vocab_size": 0, "transform": {}}
    plan = TrainPlan.from_dict(old)
    assert (plan.network, plan.epochs, plan.batch_size, plan.logical_shards) == ("mlp", 8, 32, 8)


def test_the_job_config_takes_the_training_settings_from_models():
    from pipeline.config import JobConfig, TrainConfig as Reexported
    assert Reexported is TrainConfig and JobConfig().train == TrainConfig()
    assert (TrainConfig().epochs, TrainConfig().max_restarts, TrainConfig().min_np) == (6, 2, None)


def test_the_processes_of_a_run_are_its_ranks_not_the_application_that_names_the_plan():
    me = os.getpid()
    table = {1: (0, b"init"), 50: (1, b"sh\0-c\0dcpipe train PLAN"), me: (50, b"python\0app.py\0PLAN"),
             60: (me, b"horovodrun\0-np\02"), 61: (60, b"sh\0-c\0env ... python -m models.train PLAN"),
             62: (61, b"python\0-m\0models.train\0PLAN"), 70: (1, b"python\0-m\0models.train\0OTHER")}
    assert sorted(run_processes("PLAN", table)) == [61, 62]
    assert sorted(descendants(me, table)) == [60, 61, 62]


def test_processes_named_by_a_marker_are_ended_without_a_launcher_even_when_they_ignore_sigterm(tmp_path):
    # early ranks whose launcher runs in another thread: only the marker (their plan path) finds them
    marker = str(tmp_path / "train_plan.json")
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(120)"
    procs = [subprocess.Popen([sys.executable, "-c", code, marker], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "up"   # SIGTERM is ignored from here on
    started = time.monotonic()
    end_processes(None, marker, grace=0.5)
    assert all(proc.wait(timeout=10) == -signal.SIGKILL for proc in procs)
    assert time.monotonic() - started < 5 and not any(process_alive(p.pid) for p in procs)
    assert run_processes(marker) == []


# -- the restart loop, over a stand-in launcher ------------------------------------------------

FAKE_RANKS = textwrap.dedent("""
    import json, os, sys
    plan_path, world, fail = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    run = os.path.dirname(plan_path)
    plan = json.load(open(plan_path))
    attempts = [json.loads(l) for l in open(os.path.join(run, "attempts.jsonl"))] if os.path.exists(
        os.path.join(run, "attempts.jsonl")) else []
    with open(os.path.join(run, "attempts.jsonl"), "a") as fh:
        fh.write(json.dumps({"world": world, "resume": plan["resume"]}) + "\\n")
    print(f"[train] attempt {len(attempts) + 1}", flush=True)
    if len(attempts) < fail:
        sys.exit(3)
    json.dump({"restarts": json.loads(os.environ["DCPIPE_RESTARTS"]), "world_size": world},
              open(os.path.join(run, "metrics.json"), "w"))
""")


@pytest.fixture
def fake_launcher(tmp_path, monkeypatch):
    script = tmp_path / "fake_ranks.py"
    script.write_text(FAKE_RANKS)

    def install(fail: int):
        monkeypatch.setitem(launch_mod.LAUNCHERS, "fake", lambda np, plan_path, hosts: [
            sys.executable, str(script), str(plan_path), str(np), str(fail)])
    return install


def test_failed_ranks_are_restarted_from_the_checkpoint_and_the_restarts_recorded(tmp_path, fake_launcher):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fake_launcher(fail=2)
    metrics = launch(_plan(run_dir, max_restarts=2), 2, log=lambda *a: None, launcher="fake")
    assert metrics["restarts"] == [{"attempt": 1, "exit_code": 3, "world_size": 2, "from_step": 0},
                                   {"attempt": 2, "exit_code": 3, "world_size": 2, "from_step": 0}]
    attempts = [json.loads(line) for line in (run_dir / "attempts.jsonl").read_text().splitlines()]
    assert attempts == [{"world": 2, "resume": False}, {"world": 2, "resume": True}, {"world": 2, "resume": True}]
    log = (run_dir / "train.log").read_text()
    assert "[train] attempt 3" in log and "[launch] attempt 2 exited with code 3: restart 2/2" in log


def test_when_the_restarts_are_exhausted_the_error_names_the_log_and_the_attempts(tmp_path, fake_launcher):
    fake_launcher(fail=5)
    with pytest.raises(TrainingFailed, match=r"training failed in 2 attempt\(s\) \(exit codes 3, 3; "
                                             r"train.max_restarts 1\); see .*train.log"):
        launch(_plan(tmp_path, max_restarts=1), 2, log=lambda *a: None, launcher="fake")


def test_resuming_a_finished_run_says_it_is_finished(tmp_path, fake_launcher):
    fake_launcher(fail=0)
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(RunFinished, match=r"run .* has finished \(metrics.json exists\); nothing to resume, "
                                          r"start a new run instead"):
        launch(TrainPlan.from_dict({**_plan(tmp_path).to_dict(), "resume": True}), 2, launcher="fake")


def test_more_ranks_than_logical_shards_raise_the_shards_for_the_run(tmp_path, fake_launcher):
    fake_launcher(fail=0)
    launch(_plan(tmp_path, logical_shards=2), 3, log=lambda *a: None, launcher="fake")
    assert TrainPlan.load(tmp_path / "train_plan.json").logical_shards == 3


# -- signals to the launching process ----------------------------------------------------------

SUPERVISED = textwrap.dedent("""
    import sys
    from pathlib import Path
    from models.supervise import supervise
    marker, log = sys.argv[1], Path(sys.argv[2])
    # a launcher that starts a "rank" in a session of its own, as horovodrun does, and both sleep
    cmd = [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
           "'import time; print(1, flush=True); time.sleep(300)', sys.argv[1]], start_new_session=True); "
           "time.sleep(300)", marker]
    supervise(cmd, env=None, cwd=Path.cwd(), log_path=log, marker=marker, grace=2)
""")


@pytest.mark.parametrize("sig, code", [
    (signal.SIGTERM, 143),      # SystemExit(128 + 15)
    (signal.SIGINT, -2),        # KeyboardInterrupt: Python ends itself by SIGINT
])
def test_a_signal_to_the_launching_process_ends_the_whole_tree(tmp_path, sig, code):
    marker = f"dcpipe-test-{os.getpid()}-{sig}"
    child = subprocess.Popen([sys.executable, "-c", SUPERVISED, marker, str(tmp_path / "train.log")],
                             env=rank_env(), cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        started = lambda: set(run_processes(marker)) - {child.pid}      # noqa: E731 - the child names it too
        while len(started()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(started()) == 2                               # the "launcher" and its "rank"
        time.sleep(0.2)                                          # the signal handlers are in place
        child.send_signal(sig)
        assert child.wait(timeout=10) == code
        assert run_processes(marker) == []
    finally:
        for pid in run_processes(marker):
            os.kill(pid, signal.SIGKILL)
        child.kill()
    assert "[launch] signal" in (tmp_path / "train.log").read_text()


def test_the_rank_watchdog_exits_once_the_supervisor_is_gone():
    from models.train import ORPHANED, watch_supervisor
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    exited = threading.Event()
    codes = []
    thread = watch_supervisor({"DCPIPE_SUPERVISOR_PID": str(supervisor.pid)}, interval=0.05,
                              exit=lambda code: (codes.append(code), exited.set()))
    assert thread is not None and thread.daemon
    time.sleep(0.3)
    assert not exited.is_set()                                   # alive: nothing happens
    supervisor.kill()
    supervisor.wait()
    assert exited.wait(timeout=2) and codes == [ORPHANED]
    # a supervisor on another host is not watched here
    assert watch_supervisor({"DCPIPE_SUPERVISOR_PID": "1", "DCPIPE_SUPERVISOR_HOST": "elsewhere"}) is None
