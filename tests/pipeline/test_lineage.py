"""Lineage and the `dcpipe datasets` / `dcpipe lineage` commands, as a user runs them."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import lineage, provenance, store
from pipeline.errors import UserError
from tests.pipeline.store_data import publish_tiny

REPO = Path(__file__).resolve().parents[2]


def dcpipe(*args):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


@pytest.fixture
def work(tmp_path):
    """A workdir with two versions of 'tiny' and a finished run that read the newer one."""
    source = tmp_path / "a.csv"
    source.write_text("1,2,3\n")
    src = {"path": str(source), "name": "a.csv", "bytes": 6, "sha256": provenance.file_sha256(source)}
    root = tmp_path / "work" / "datasets"
    publish_tiny(root, version="aaaaaaaa00000001", seed=1)
    ref = publish_tiny(root, version="aaaaaaaa00000002", seed=2, sources=[src]).ref
    run_dir = tmp_path / "work" / "runs" / "20261122-050000-abcd"
    run_dir.mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"weights")
    (run_dir / "config.yaml").write_text("seed: 2\n")
    summary = {"run_id": run_dir.name, "dataset_version": str(ref), "dataset_path": str(ref.path),
               "test_accuracy": 0.9, "world_size": 2, "compression": "fp16", "model": str(run_dir / "model.keras")}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    lineage.record_run(run_dir, ref, summary)
    return tmp_path / "work", run_dir, ref, src


def test_lineage_prints_model_run_dataset_config_sources(work):
    workdir, run_dir, ref, src = work
    out = dcpipe("lineage", run_dir.name, "--workdir", str(workdir))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["model", "run", "dataset", "created", "config", "code",
                                                   "source"]
    model = run_dir / "model.keras"
    assert lines[0].startswith(f"model    {model}  sha256 {provenance.file_sha256(model)[:16]}")
    assert f"dataset  {ref}  {ref.path}" in lines[2] and "parent aaaaaaaa00000001" in lines[3]
    assert "seed 2" in lines[4]
    assert lines[-1] == f"source   {src['path']}  6 bytes  sha256 {src['sha256']}"


def test_lineage_notes_a_changed_model_and_a_removed_dataset(work):
    workdir, run_dir, ref, _ = work
    (run_dir / "model.keras").write_bytes(b"other weights")
    store.gc(workdir / "datasets", keep=1)           # keeps ref (the newest): still there
    assert ref.exists()
    notes = lineage.trace(run_dir).notes
    assert notes == (f"model {run_dir / 'model.keras'} changed or is gone since the run recorded it",)
    (ref.path / "manifest.json").unlink()
    assert f"dataset version {ref} is no longer in" in lineage.trace(run_dir).notes[0]


def test_runs_without_lineage_json_fall_back_to_the_summary(work):
    _, run_dir, ref, _ = work
    (run_dir / "lineage.json").unlink()
    t = lineage.trace(run_dir)
    assert t.record["dataset"]["ref"] == str(ref) and t.manifest["version"] == ref.version
    assert "lineage.json missing" in t.notes[0]


@pytest.mark.parametrize("run, match", [
    ("..", r"run id '\.\.' is not allowed"),                      # traversal
    ("20261122-000000-none", r"runs/20261122-000000-none: no run found"),
])
def test_bad_run_ids_are_one_line_errors(work, run, match):
    with pytest.raises(UserError, match=match):
        lineage.run_dir_of(run, work[0])
    out = dcpipe("lineage", run, "--workdir", str(work[0]))
    assert out.returncode == 2 and out.stderr.startswith("dcpipe: error: ") and "Traceback" not in out.stderr


def test_datasets_commands(work):
    workdir, _, ref, _ = work
    w = ("--workdir", str(workdir))
    listed = dcpipe("datasets", "list", *w)
    assert listed.returncode == 0 and listed.stdout.splitlines()[0] == "tiny"
    newest = listed.stdout.splitlines()[2]
    assert newest.startswith("  aaaaaaaa00000002") and newest.endswith("(latest)")
    shown = dcpipe("datasets", "show", "tiny", *w)               # latest by default
    assert shown.returncode == 0 and shown.stdout.startswith(f"{ref}  ({ref.path})")
    as_json = dcpipe("datasets", "show", str(ref), "--json", *w)
    assert json.loads(as_json.stdout) == ref.manifest()
    diff = dcpipe("datasets", "diff", "tiny@aaaaaaaa00000001", "tiny", *w)
    assert diff.returncode == 0 and "  config.seed: 1 -> 2" in diff.stdout.splitlines()
    ok = dcpipe("datasets", "verify", str(ref), *w)
    assert ok.returncode == 0 and ok.stdout.startswith(f"{ref}: OK (")
    chunk = ref.data_path / "image" / "c" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-1])
    bad = dcpipe("datasets", "verify", str(ref), *w)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[1].startswith("  image: chunk c/0/0/0/0 (samples 0-31) damaged")
    gc = dcpipe("datasets", "gc", "--keep", "1", *w)
    assert gc.returncode == 0 and gc.stdout.splitlines()[0] == "removed tiny@aaaaaaaa00000001"
    refused = dcpipe("datasets", "show", "tiny@../../etc", *w)
    assert refused.returncode == 2 and "dataset version '../../etc' is not allowed" in refused.stderr
