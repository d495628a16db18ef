"""``dcpipe datasets tag/list/gc``: tags shown, rejected versions marked, versions runs use kept."""
import json

import pytest

from pipeline import store
from pipeline.cli import main
from pipeline.datasets_cli import referenced_versions
from pipeline.workdir import Workdir
from tests.pipeline.store_data import publish_tiny

OLD, MID, NEW = "aaaa000000000001", "aaaa000000000002", "bbbb000000000003"
REJECTED = {"passed": False, "gate": "max_quarantined_fraction", "message": "x: quality gate failed"}


@pytest.fixture
def work(tmp_path):
    root = tmp_path / "datasets"
    publish_tiny(root, version=OLD, seed=1)
    publish_tiny(root, version=MID, seed=2)
    publish_tiny(root, version=NEW, seed=3, quality=REJECTED)
    return tmp_path


def _run(tmp_path, run_id, summary=None, lineage=None):
    folder = tmp_path / "runs" / run_id
    folder.mkdir(parents=True)
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    if lineage is not None:
        (folder / "lineage.json").write_text(json.dumps(lineage))


def test_tag_then_list_shows_tags_latest_and_rejections(work, capsys):
    assert main(["datasets", "tag", "--workdir", str(work), "tiny@aaaa000000000001", "prod"]) == 0
    assert capsys.readouterr().out.strip() == f"tagged tiny@{OLD} as tiny@prod"
    assert main(["datasets", "list", "--workdir", str(work)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"  {OLD}") and lines[1].endswith("(tag prod)")
    assert lines[2].endswith("(latest)")                                  # the newest that passed
    assert lines[3].endswith("(rejected: max_quarantined_fraction)")
    assert main(["datasets", "list", "--json", "--workdir", str(work)]) == 0
    listed = json.loads(capsys.readouterr().out)["tiny"]
    assert [(v["tags"], v["latest"], v["rejected"]) for v in listed] == [
        (["prod"], False, None), ([], True, None), ([], False, "max_quarantined_fraction")]


def test_a_bad_tag_is_one_line_exit_2(work, capsys):
    assert main(["datasets", "tag", "--workdir", str(work), "tiny@aaaa", "prod"]) == 2   # ambiguous prefix
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tiny@aaaa: version prefix is ambiguous" in err
    assert main(["datasets", "tag", "--workdir", str(work), f"tiny@{OLD}", "latest"]) == 2
    assert "tag 'latest' is not allowed" in capsys.readouterr().err


def test_referenced_versions_reads_summaries_and_lineage(tmp_path):
    _run(tmp_path, "20261203-100000-aaaa", summary={"dataset_version": f"tiny@{OLD}"})
    _run(tmp_path, "20261203-110000-bbbb", lineage={"dataset": {"ref": f"tiny@{OLD}"}})
    _run(tmp_path, "20261203-120000-cccc", summary={"dataset_version": f"tiny@{MID}"},
         lineage={"dataset": {"ref": f"tiny@{MID}"}})
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "summary.json").write_text("{not json")
    assert referenced_versions(Workdir(tmp_path)) == {
        f"tiny@{OLD}": ["20261203-100000-aaaa", "20261203-110000-bbbb"], f"tiny@{MID}": ["20261203-120000-cccc"]}
    assert referenced_versions(Workdir(tmp_path / "nowhere")) == {}


def test_gc_keeps_versions_that_runs_reference_and_says_which(work, capsys):
    _run(work, "20261203-100000-aaaa", summary={"dataset_version": f"tiny@{OLD}"})
    assert main(["datasets", "gc", "--keep", "1", "--workdir", str(work)]) == 0
    out = capsys.readouterr().out
    assert f"kept tiny@{OLD}: referenced by run 20261203-100000-aaaa" in out
    assert f"kept tiny@{MID}: latest usable version" in out           # NEW is rejected: MID is latest
    assert [r.version for r in store.versions(work / "datasets", "tiny")] == [OLD, MID, NEW]


def test_gc_removes_unreferenced_versions_and_leaves_no_lock_files(work):
    folder = work / "datasets" / "tiny"
    (folder / ".lock-cccc000000000009").touch()                       # a lock of a version long gone
    protected = {store.DatasetRef(work / "datasets", "tiny", MID): ["r1"]}
    done = store.gc(work / "datasets", keep=1, protected=protected)
    assert [r.version for r in done.removed] == [OLD] and done.kept[0][1] == "referenced by run r1"
    assert not (folder / f".lock-{OLD}").exists() and not (folder / ".lock-cccc000000000009").exists()
    assert sorted(p.name for p in folder.glob(".lock-*")) == [f".lock-{MID}", f".lock-{NEW}"]
    assert store.verify(store.DatasetRef(work / "datasets", "tiny", MID)) == []


def test_a_writer_waiting_on_a_lock_file_gc_removes_locks_the_new_file(tmp_path):
    import threading
    import time
    from pipeline.store import layout
    got, release = threading.Event(), threading.Event()

    def writer():
        with layout.version_lock(tmp_path, "tiny", OLD) as held:    # waits: the main thread holds it
            assert held
            got.set()
            release.wait(30)

    with layout.version_lock(tmp_path, "tiny", OLD):
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.2)
        layout.drop_lock_file(tmp_path, "tiny", OLD)                 # what gc does while holding it
    assert got.wait(30)
    with layout.version_lock(tmp_path, "tiny", OLD, blocking=False) as mine:
        assert not mine          # the writer holds the lock at the path, not a removed file's
    release.set()
    thread.join(30)
