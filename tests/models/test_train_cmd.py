"""`dcpipe train` on a prepared tiny dataset: a 2-rank run killed mid-epoch resumes to the end,
and its serving bundle predicts raw CSV records in a fresh process."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from models import checkpoint
from models.train_cmd import resolve_dataset
from pipeline.cli import main as cli_main
from pipeline.job import prepare_only
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
        if json.loads(state.read_text())["step"] > 0:
            return state
    return None


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
        os.killpg(proc.pid, signal.SIGKILL)    # the whole launcher session: horovodrun and its ranks
        proc.wait()
    state = _mid_epoch_checkpoint(work)
    assert state is not None, "the run ended before its first mid-epoch checkpoint"
    run_dir = state.parents[2]
    assert not (run_dir / "metrics.json").exists()          # killed before the end

    done = subprocess.run(_dcpipe(*args, "--resume"), env=rank_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resumed from step-" in done.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    steps = metrics["steps_per_epoch"]                        # 640 // 2 // 16 = 20
    assert steps == 20 and 0 < metrics["resumed_from_step"] < 3 * steps
    assert metrics["compression"] == "topk:0.1"                # the run's own plan, not the default
    final = json.loads((checkpoint.latest(run_dir) / "state.json").read_text())
    assert final == {"epoch": 3, "step": 0, "global_step": 3 * steps}
    assert [h["epoch"] for h in metrics["history"]][-1] == 3
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


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
    assert transform == {"kind": "pixel_scale", "value_min": 0, "value_max": 255, "image_shape": [28, 28, 1],
                         "n_fields": 785, "label_column": -1, "labels": list(range(10))}


def test_latest_is_the_newest_manifest(prepared):
    tmp, ref, _ = prepared
    root = tmp / "work" / "datasets"
    assert resolve_dataset(ref.name, root) == ref
    assert resolve_dataset(f"{ref.name}@latest", root) == ref
    assert resolve_dataset(str(ref), root) == ref


@pytest.mark.parametrize("args, message", [
    # a dataset that was never prepared
    (["--dataset", "nope"], r"--dataset nope: .*nope: dataset 'nope' has no versions; prepare one with `dcpipe prepare`"),
    # a version that does not exist lists the ones that do
    (["--dataset", "mnist@v0"], r"--dataset mnist@v0: dataset version 'v0' is not allowed; a version is 8-64"),
    # a well-formed version that was never prepared
    (["--dataset", "mnist@0123456789abcdef"], r"--dataset mnist@0123456789abcdef: .* not found; see `dcpipe datasets"),
    # a compression spec outside the known forms
    (["--dataset", "mnist", "--compression", "topk:2"], r"--compression 'topk:2' is not one of none, fp16"),
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
    from models.train_cmd import _input_of
    from pipeline.errors import UserError
    from pipeline.store import DatasetRef
    ref = DatasetRef(root=tmp_path, name="topics", version="0123456789abcdef")
    manifest = {"variables": {stored: {"shape": [10, 8]}, "label": {"shape": [10]}}}
    with pytest.raises(UserError, match=message):
        _input_of(ref, manifest, network)
