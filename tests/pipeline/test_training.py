"""The one training path (`dcpipe train` = `dcpipe run --dataset`) on a prepared tiny dataset: a
2-rank run killed mid-epoch resumes to the end and leaves a complete record (summary, lineage,
`dcpipe runs`); its serving bundle predicts raw CSV records in a fresh process; everything that
can be refused is refused in one line before a run folder exists."""
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from models import checkpoint
from pipeline import store
from pipeline.cli import main as cli_main
from pipeline.job import existing_version, prepare_only
from tests.conftest import small_config, take_balanced
from tests.models.helpers import REPO, horovodrun, rank_env


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mnist_lines):
    """A workdir holding one prepared version of 400 real MNIST rows (640 train samples stored)."""
    tmp = tmp_path_factory.mktemp("train")
    csv = tmp / "mnist_400.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 40)) + "\n")
    cfg = small_config(csv, train={"epochs": 3, "batch_size": 16, "np": 2, "checkpoint_every": 2,
                                   "compression": "topk:0.1"})
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    ref = prepare_only(cfg, workdir=tmp / "work", log=lambda *a: None, show_progress=False).ref
    return tmp, ref, csv


def _dcpipe(*args) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def _mid_epoch_checkpoint(workdir):
    for state in workdir.glob("runs/*/checkpoints/step-*/state.json"):
        if json.loads(state.read_text())["batches_consumed"] > 0:
            return state
    return None


def _processes_of(run_dir) -> list[str]:
    """Command lines of the live processes that work on ``run_dir`` (the launcher and the ranks)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(run_dir) in cmd and "pytest" not in cmd:
            found.append(f"{proc.name}: {cmd[:200]}")
    return found


@pytest.mark.horovod
def test_killed_run_resumes_mid_epoch_to_completion(prepared):
    tmp, ref, _ = prepared
    horovodrun()                         # skips with the reason when Horovod is missing
    work = tmp / "work"
    args = ["train", "--dataset", ref.name, "--workdir", str(work), "--config", str(tmp / "config.yaml")]
    proc = subprocess.Popen(_dcpipe(*args), env=rank_env(), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while _mid_epoch_checkpoint(work) is None and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.kill()                      # `kill -9` of dcpipe alone, as a user or a scheduler does it
        proc.wait()
    state = _mid_epoch_checkpoint(work)
    assert state is not None, "the run ended before its first mid-epoch checkpoint"
    run_dir = state.parents[2]
    assert not (run_dir / "metrics.json").exists()          # killed before the end
    deadline = time.monotonic() + 20
    while _processes_of(run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(run_dir) == [], "horovodrun or ranks outlived the killed dcpipe"
    assert (run_dir / "train.log").read_text().strip(), "train.log lost the output before the kill"
    listed = subprocess.run(_dcpipe("runs", "list", "--workdir", str(work)), capture_output=True, text=True)
    assert re.search(rf"{run_dir.name}\s+{re.escape(str(ref))}\s.*\binterrupted$", listed.stdout, re.M), listed.stdout

    done = subprocess.run(_dcpipe(*args, "--resume"), env=rank_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resumed from step-" in done.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    steps = metrics["steps_per_epoch"]                        # 640 // 2 // 16 = 20
    assert steps == 20 and 0 < metrics["resumed_from_step"] < 3 * steps
    assert metrics["compression"] == "topk:0.1"                # the run's own plan, not the default
    final = json.loads((checkpoint.latest(run_dir) / "state.json").read_text())
    assert final["epoch"] == 3 and final["global_step"] == 3 * steps
    assert [h["epoch"] for h in metrics["history"]][-1] == 3
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))     # <run>/tensorboard/<name>/
    # the run's record: summary (printed with its paths) and lineage, like every run of every command
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "finished" and summary["test_accuracy"] == metrics["test_accuracy"]
    assert summary["dataset_version"] == str(ref) and summary["network"] == "cnn"
    for key in ("bundle", "tensorboard", "report"):
        assert Path(summary[key]).exists() and f"{summary[key]}" in done.stdout, key
    record = json.loads((run_dir / "lineage.json").read_text())
    assert record["dataset"]["ref"] == str(ref) and record["model"]["sha256"]
    traced = subprocess.run(_dcpipe("lineage", run_dir.name, "--workdir", str(work)), capture_output=True, text=True)
    assert traced.returncode == 0 and f"dataset  {ref}" in traced.stdout, traced.stderr


@pytest.mark.horovod
def test_sigterm_ends_the_run_as_interrupted_and_leaves_no_process(prepared, tmp_path):
    tmp, ref, _ = prepared
    horovodrun()
    work = tmp_path / "work"
    shutil.copytree(tmp / "work" / "datasets", work / "datasets")
    proc = subprocess.Popen(_dcpipe("train", "--dataset", str(ref), "--workdir", str(work), "--epochs", "20"),
                            env=rank_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(work.glob("runs/*/history.json")):
            time.sleep(0.1)
    finally:
        proc.terminate()                   # SIGTERM, as `kill`, systemd or a SLURM time limit sends it
        out, _ = proc.communicate(timeout=60)
    (run_dir,) = work.glob("runs/*")
    assert proc.returncode == 143, out[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["state"] == "interrupted"
    assert _processes_of(run_dir) == []
    assert "[launch] signal 15: ended the ranks" in (run_dir / "train.log").read_text()


def _finished_runs(work) -> list[str]:
    return sorted(p.parent.name for p in (work / "runs").glob("*/metrics.json"))


@pytest.mark.horovod
def test_a_finished_run_given_resume_says_so(prepared, capsys):
    tmp, ref, _ = prepared
    finished = _finished_runs(tmp / "work")
    if not finished:
        pytest.skip("needs the finished run of test_killed_run_resumes_mid_epoch_to_completion")
    code = cli_main(["train", "--dataset", str(ref), "--workdir", str(tmp / "work"), "--resume", finished[-1]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert re.search(rf"--resume: run {finished[-1]} is finished \(test_accuracy 0\.\d+\); nothing to resume", err)


@pytest.mark.horovod
def test_runs_list_show_and_compare(prepared, capsys):
    tmp, ref, _ = prepared
    work = tmp / "work"
    finished = _finished_runs(work)
    if not finished:
        pytest.skip("needs the finished run of test_killed_run_resumes_mid_epoch_to_completion")
    run_id = finished[-1]
    assert cli_main(["runs", "list", "--workdir", str(work)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "dataset", "network", "compression", "ranks", "accuracy", "wall_s", "state"]
    mine = next(line.split() for line in lines if line.startswith(run_id))
    assert mine[1:5] == [str(ref), "cnn", "topk:0.1", "2"] and mine[-1] == "finished"
    assert cli_main(["runs", "show", run_id, "--workdir", str(work)]) == 0
    shown = capsys.readouterr().out
    assert f"run {run_id}" in shown and "finished" in shown and re.search(r"^\s+3\s+\d", shown, re.M)
    # a second, never-started run folder compares as interrupted, fields that differ starred
    other = work / "runs" / "20000101-000000-beef"
    other.mkdir()
    (other / "summary.json").write_text(json.dumps({"state": "running", "network": "mlp"}))
    assert cli_main(["runs", "compare", run_id, other.name, "--workdir", str(work)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert re.match(r"\*\s+state\s+finished\s+interrupted", table[1].strip())
    assert any(re.match(r"\*\s+network\s+cnn\s+mlp", line.strip()) for line in table)
    shutil.rmtree(other)


def test_a_running_run_has_one_writer(prepared, capsys):
    """A second `--resume` of a run whose lock is held (it is running) is refused in one line."""
    tmp, ref, _ = prepared
    from models.rundir import RunDir
    run = RunDir(tmp / "work" / "runs" / "20000101-000000-cafe")
    run.path.mkdir(parents=True)
    run.plan.write_text(json.dumps({"dataset_version": str(ref)}))
    try:
        with run.lock():
            code = cli_main(["train", "--dataset", str(ref), "--workdir", str(tmp / "work"), "--resume", run.id])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err
        assert re.search(r"--resume: .*run 20000101-000000-cafe is running \(another process holds \.lock\)", err)
    finally:
        shutil.rmtree(run.path)


@pytest.mark.horovod
def test_bundle_predicts_raw_csv_records_in_a_fresh_process(prepared, mnist_lines):
    tmp, ref, csv = prepared
    bundles = sorted((tmp / "work" / "runs").glob("*/bundle/bundle.json"))
    if not bundles:
        pytest.skip("needs the finished run of test_killed_run_resumes_mid_epoch_to_completion")
    raw = take_balanced(mnist_lines, 60)[-100:]             # 10 rows per digit, labels last
    (tmp / "raw.csv").write_text("\n".join(raw) + "\n")
    code = ("import json, sys\n"
            "from models.export import load_bundle\n"
            "lines = open(sys.argv[2]).read().split()\n"
            "b = load_bundle(sys.argv[1])\n"
            "with_label = b.predict_csv(lines)\n"
            "without = b.predict_csv([l.rsplit(',', 1)[0] for l in lines])\n"
            "print(json.dumps({'pred': with_label.tolist(), 'same': bool((with_label == without).all())}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(bundles[-1].parent), str(tmp / "raw.csv")],
                         env=rank_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    labels = [int(line.rsplit(",", 1)[1]) for line in raw]
    accuracy = sum(p == y for p, y in zip(result["pred"], labels)) / len(labels)
    assert result["same"] and accuracy > 0.6
    transform = json.loads((bundles[-1].parent / "transform.json").read_text())
    stored = json.loads(store.open_version(ref).attrs["features"])      # the one fitted transform
    assert transform == {"kind": "image_features", "features": stored, "x_var": "image", "n_fields": 785,
                         "label_column": -1, "labels": list(range(10))}


def test_latest_is_the_newest_manifest(prepared):
    tmp, ref, _ = prepared
    work = tmp / "work"
    for spec in (ref.name, f"{ref.name}@latest", str(ref), f"{ref.name}@{ref.version[:6]}"):
        assert existing_version(work, spec).ref == ref, spec


@pytest.mark.parametrize("args, message", [
    # a dataset that was never prepared
    (["--dataset", "nope"], r"--dataset nope: .*nope: dataset 'nope' has no versions; prepare one with `dcpipe prepare`"),
    # neither a version nor a known tag
    (["--dataset", "mnist@v0"], r"--dataset mnist@v0: .*dataset 'mnist' has no tag 'v0'; see `dcpipe datasets list`"),
    # a well-formed version that was never prepared
    (["--dataset", "mnist@0123456789abcdef"], r"--dataset mnist@0123456789abcdef: .* not found; see `dcpipe datasets"),
    # a compression spec outside the known forms
    (["--dataset", "mnist", "--compression", "topk:2"], r"--compression 'topk:2': must be none, fp16, topk:RATIO with 0 < RATIO <= 1"),
    # resuming with no earlier run on a fresh workdir copy is impossible
    (["--dataset", "mnist", "--resume"], r"--resume: no earlier run on mnist@"),
])
def test_train_user_errors_are_one_line_exit_2(prepared, capsys, tmp_path, args, message):
    tmp, ref, _ = prepared
    work = tmp_path / "work"
    shutil.copytree(tmp / "work" / "datasets", work / "datasets")
    code = cli_main(["train", "--workdir", str(work), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert re.search(message, err), err


@pytest.mark.parametrize("network, stored, message", [
    # an image network on a text dataset points to the token networks
    ("cnn", "tokens", r"train\.network: cnn takes images but dataset topics@0123456789abcdef stores 'tokens'; "
                      r"set train\.network to text_transformer"),
    # a token network on an image dataset points to the image networks
    ("text_transformer", "image", r"train\.network: text_transformer takes token ids but dataset "
                                  r"topics@0123456789abcdef stores 'image'; set train\.network to cnn, mlp or transformer"),
])
def test_a_network_that_does_not_fit_the_stored_input_says_which_does(tmp_path, network, stored, message):
    from pipeline.training import plan_input
    from pipeline.errors import UserError
    from pipeline.store import DatasetRef
    ref = DatasetRef(root=tmp_path, name="topics", version="0123456789abcdef")
    manifest = {"variables": {stored: {"shape": [10, 8]}, "label": {"shape": [10]}}}
    with pytest.raises(UserError, match=message):
        plan_input(ref, manifest, network)


@pytest.mark.parametrize("damage, message", [
    # a chunk deleted by hand: named with its samples, never read as zeros
    ("delete_chunk", r"image: chunk c/\d+/0/0/0 \(samples \d+-\d+\) missing; the version is damaged"),
    # ranges.train edited to reach into the val and test splits: the manifest's seal no longer holds
    ("edit_manifest", r"manifest\.json.*(edited|damaged)"),
])
def test_a_damaged_version_is_refused_before_a_run_folder_exists(prepared, tmp_path, capsys, damage, message):
    tmp, ref, _ = prepared
    work = tmp_path / "work"
    shutil.copytree(tmp / "work" / "datasets", work / "datasets")
    version = work / "datasets" / ref.name / ref.version
    if damage == "delete_chunk":
        chunk = sorted((version / "data.zarr" / "image" / "c").glob("*/0/0/0"))[1]
        chunk.unlink()
    else:
        manifest = json.loads((version / "manifest.json").read_text())
        manifest["ranges"]["train"] = [0, manifest["ranges"]["test"][1]]
        (version / "manifest.json").write_text(json.dumps(manifest, indent=2))
    code = cli_main(["train", "--dataset", str(ref), "--workdir", str(work)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and re.search(message, err), err
    assert not (work / "runs").exists()
    assert cli_main(["datasets", "verify", str(ref), "--workdir", str(work)]) == 1
    assert re.search(message.split(";")[0], capsys.readouterr().out)
