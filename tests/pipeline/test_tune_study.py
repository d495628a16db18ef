"""A real small study: `dcpipe tune` on a real LocalCluster, its trials real runs through the one
training path (horovodrun, 1 rank each), killed (SIGKILL) while a trial runs and started again:
the finished trial is kept, the interrupted one is marked failed and retried with its parameters,
and trials.csv, best.yaml (a config `dcpipe` takes as it is) and report.html are written."""
import json
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from models.rundir import RunDir
from pipeline.cli import main as cli_main
from pipeline.runs import state_of
from pipeline.tune.study import INTERRUPTED, storage_of
from tests.conftest import take_balanced
from tests.pipeline.test_training import _processes_of
from tests.models.helpers import REPO, horovodrun, rank_env


def _dcpipe(*args) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def _config(tmp_path, mnist_lines):
    csv = tmp_path / "small.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 20)) + "\n")
    cfg = {"source": {"path": str(csv)}, "store": {"chunk_rows": 64}, "augment": {"copies": 0},
           "train": {"epochs": 1, "batch_size": 16, "network": "mlp"},
           "cluster": {"workers": 1, "dashboard_address": ":0"},   # one trial at a time: a kill lands mid-trial
           "tune": {"study": "t", "trials": 2, "sampler": "random", "space": {
               "train.learning_rate": {"log_uniform": [1e-3, 1e-2]}, "train.batch_size": {"choice": [8, 16]}}}}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.horovod
def test_a_killed_study_continues_keeping_finished_trials_and_retrying_the_interrupted(tmp_path, mnist_lines,
                                                                                      capsys):
    horovodrun()
    config, work = _config(tmp_path, mnist_lines), tmp_path / "work"
    folder = work / "studies" / "t"
    args = _dcpipe("tune", "--config", str(config), "--workdir", str(work))
    proc = subprocess.Popen(args, env=rank_env(), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:       # trial 0 finishes, trial 1 starts: kill -9 dcpipe tune then
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and not (
                (folder / "trials/0/result.json").is_file() and (folder / "trials/1/trial.log").is_file()):
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        proc.kill()
        proc.wait()
    assert (folder / "trials/1/trial.log").is_file(), "the study ended before its second trial started"
    deadline = time.monotonic() + 30
    while _processes_of(work) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(work) == [], "a trial or its ranks outlived the killed dcpipe tune"
    first = optuna.load_study(study_name="t", storage=storage_of(folder / "journal.log")).trials
    assert [t.state.name for t in first] == ["COMPLETE", "RUNNING"]
    interrupted = RunDir(work / "runs" / json.loads((folder / "trials/0/result.json").read_text())["run_id"])
    assert json.loads(interrupted.summary.read_text())["study"] == "t"

    done = subprocess.run(args, env=rank_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "trial(s) 1 were running when the study stopped: marked failed, retried first" in done.stdout
    trials = optuna.load_study(study_name="t", storage=storage_of(folder / "journal.log")).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[0].datetime_complete == first[0].datetime_complete          # kept, not re-run
    assert trials[1].user_attrs[INTERRUPTED] and trials[2].user_attrs["retry_of"] == 1
    assert trials[2].params == trials[1].params
    killed_runs = [RunDir(r) for r in (work / "runs").iterdir() if r.name not in
                   {t.user_attrs["run_id"] for t in (trials[0], trials[2])}]
    assert len(killed_runs) <= 1          # none when the kill came before trial 1 made its run folder
    for run in killed_runs:
        summary = json.loads(run.summary.read_text()) if run.summary.is_file() else {}
        assert not run.metrics.is_file() and state_of(run, summary) == "interrupted"
    assert {t.user_attrs["dataset"] for t in trials} == {json.loads(
        (work / "runs" / trials[0].user_attrs["run_id"] / "summary.json").read_text())["dataset_version"]}
    best = max((trials[0], trials[2]), key=lambda t: t.value)
    assert done.stdout.strip().splitlines()[-1] == best.user_attrs["run_id"]       # the best run id, last
    for trial in (trials[0], trials[2]):
        run = RunDir(work / "runs" / trial.user_attrs["run_id"])
        summary = json.loads(run.summary.read_text())
        assert (summary["state"], summary["study"], summary["trial"]) == ("finished", "t", trial.number)
        assert run.lineage.is_file() and run.bundle.is_dir()
    assert len((folder / "trials.csv").read_text().strip().splitlines()) == 1 + 3
    assert (folder / "report.html").read_text().count("data:image/png;base64,") >= 3
    # best.yaml is a full config dcpipe takes as it is: the same prepared version (a cache hit), the best params
    capsys.readouterr()
    assert cli_main(["config", "--config", str(folder / "best.yaml")]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["learning_rate"] == best.params["train.learning_rate"]
    assert resolved["train"]["batch_size"] == best.params["train.batch_size"]
    assert cli_main(["prepare", "--config", str(folder / "best.yaml"), "--workdir", str(work)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == best.user_attrs["dataset"]    # a cache hit


def test_tune_user_errors_are_one_line_exit_2(tmp_path, capsys):
    main = cli_main
    bad = tmp_path / "bad.yaml"
    bad.write_text("tune:\n  space:\n    augment.copies: {int: [0, 3]}\n")
    assert main(["tune", "--config", str(bad), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tune.space: augment.copies changes the prepared data" in err
    assert main(["tune", "--trials", "0", "--workdir", str(tmp_path / "w")]) == 2
    assert "--trials must be a positive integer (got 0)" in capsys.readouterr().err
    assert main(["tune", "--study", "../x", "--workdir", str(tmp_path / "w")]) == 2
    assert "--study: tune.study: String should match pattern" in capsys.readouterr().err
