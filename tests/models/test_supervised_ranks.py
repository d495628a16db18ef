"""Supervised ranks, the way they fail: a real ``horovodrun -np 2 --gloo`` on a tiny prepared
dataset whose launcher is SIGKILLed, and one whose rank is SIGKILLed mid-epoch."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from models import checkpoint
from models.launch import PlanRejected, launch
from models.supervise import run_processes
from pipeline.job import prepare_only
from tests.conftest import small_config, take_balanced
from tests.models.helpers import REPO, horovodrun, plan_of, rank_env, rank_pids


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mnist_lines):
    """One prepared version of 400 real MNIST rows (640 train samples stored, chunks of 64)."""
    tmp = tmp_path_factory.mktemp("supervised")
    csv = tmp / "mnist_400.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 40)) + "\n")
    ref = prepare_only(small_config(csv), workdir=tmp / "work", log=lambda *a: None, show_progress=False).ref
    return tmp, ref


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _mid_epoch(run_dir, min_epoch=0):
    for state in run_dir.glob("checkpoints/step-*/state.json"):
        try:
            pos = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if pos["batches_consumed"] > 0 and pos["epoch"] >= min_epoch:
            return pos
    return None


@pytest.mark.horovod
def test_killing_the_launcher_ends_every_rank_within_seconds(tiny):
    tmp, ref = tiny
    horovodrun()
    run_dir = tmp / "work" / "runs" / "killed-launcher"
    run_dir.mkdir(parents=True)
    plan = plan_of(ref, run_dir, epochs=50, batch_size=16, checkpoint_every=2)
    plan_path = plan.save(run_dir / "train_plan.json")
    code = ("import sys\nfrom models.launch import launch\nfrom models.plan import TrainPlan\n"
            "launch(TrainPlan.load(sys.argv[1]), 2)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(plan_path)], env=rank_env(), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _mid_epoch(run_dir) is not None or child.poll() is not None, 240, "a mid-epoch checkpoint")
        assert child.poll() is None, "the launcher ended before it could be killed"
        assert len(rank_pids(plan_path)) == 2
        child.kill()                                  # SIGKILL: no handler runs in the launching process
        child.wait()
        killed = time.monotonic()
        _wait_for(lambda: not run_processes(str(plan_path)), 10, "every process of the run to end")
        print(f"run ended {time.monotonic() - killed:.1f} s after its launcher was killed")
    finally:
        for pid in run_processes(str(plan_path)):     # never leave a rank behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
    log = (run_dir / "train.log").read_text()
    assert "[rank 0/2]" in log and "[rank 1/2]" in log and "[train] 2 rank(s)" in log


@pytest.mark.horovod
def test_a_rank_killed_mid_epoch_is_restarted_from_the_checkpoint_and_the_run_finishes(tiny):
    tmp, ref = tiny
    horovodrun()
    settings = {"epochs": 4, "batch_size": 16, "checkpoint_every": 3, "compression": "none"}
    run_dir = tmp / "work" / "runs" / "killed-rank"
    run_dir.mkdir(parents=True)
    plan_path = run_dir / "train_plan.json"
    killed = {}

    def kill_rank_1():
        _wait_for(lambda: _mid_epoch(run_dir, min_epoch=1) is not None, 240, "a mid-epoch checkpoint in epoch 2")
        killed["position"], pids = _mid_epoch(run_dir, min_epoch=1), rank_pids(plan_path)
        killed["pid"] = pids[1]
        os.kill(pids[1], signal.SIGKILL)

    killer = threading.Thread(target=kill_rank_1, daemon=True)
    killer.start()
    t0 = time.monotonic()
    metrics = launch(plan_of(ref, run_dir, **settings), 2, log=lambda *a: None)
    seconds = time.monotonic() - t0
    killer.join(timeout=1)
    assert "pid" in killed, "the run finished before a rank could be killed"

    [restart] = metrics["restarts"]
    assert restart["attempt"] == 1 and restart["exit_code"] != 0 and restart["world_size"] == 2
    assert restart["from_step"] >= killed["position"]["global_step"] > 0
    assert metrics["resumed_from_step"] == restart["from_step"]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]        # every epoch once
    assert json.loads((checkpoint.latest(run_dir) / "state.json").read_text()) == {
        "epoch": 4, "batches_consumed": 0, "global_step": 4 * metrics["steps_per_epoch"]}
    assert metrics["test_accuracy"] > 0.5                                  # chance is 0.1
    assert not run_processes(str(plan_path))

    # The same plan undisturbed: the restarted run learns about as well.
    calm_dir = tmp / "work" / "runs" / "undisturbed"
    calm_dir.mkdir()
    calm = launch(plan_of(ref, calm_dir, **settings), 2, log=lambda *a: None)
    print(f"restarted run {seconds:.0f} s: test accuracy {metrics['test_accuracy']:.3f}, undisturbed "
          f"{calm['test_accuracy']:.3f}")
    assert calm["restarts"] == []
    assert abs(metrics["test_accuracy"] - calm["test_accuracy"]) <= 0.1


@pytest.mark.horovod
def test_a_network_that_cannot_take_the_input_is_refused_by_the_ranks_in_one_line_and_not_restarted(tiny):
    """TensorFlow is the ranks' alone: they build the network, and one that cannot take the input is a
    config error, written to rejected.json and raised as PlanRejected, with no restart."""
    tmp, ref = tiny
    horovodrun()
    run_dir = tmp / "work" / "runs" / "rejected"
    run_dir.mkdir(parents=True)
    # a token network on the image store: vocab_size 0, which models.networks.build refuses
    plan = plan_of(ref, run_dir, epochs=1, batch_size=16, network="text_transformer", max_restarts=2)
    shape = plan.input_shape
    expected = (f"train.network: text_transformer cannot take inputs of shape {shape} (network 'text_transformer' "
                "reads token ids and needs vocab_size >= 3 (got 0); train it on a text dataset); "
                "choose another train.network")
    with pytest.raises(PlanRejected) as raised:
        launch(plan, 1)
    assert str(raised.value) == expected
    assert json.loads((run_dir / "rejected.json").read_text()) == {"error": expected}
    log = (run_dir / "train.log").read_text()
    assert f"[rank 0] {expected}" in log
    assert "[launch] attempt" not in log and not (run_dir / "metrics.json").exists()   # one attempt, no restart
