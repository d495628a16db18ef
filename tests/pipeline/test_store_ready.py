"""The manifest seal, ``datasets verify`` on an edited manifest, and ``check_ready`` on real versions."""
import json
import shutil

import pytest

from pipeline import store
from pipeline.cli import main
from pipeline.errors import UserError
from tests.conftest import prepare_small
from tests.pipeline.store_data import publish_tiny


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mnist_lines):
    """A real prepared version (200 MNIST rows, 64-row chunks) under ``<folder>/work/datasets``."""
    _, workdir, prepared = prepare_small(tmp_path_factory.mktemp("ready"), mnist_lines)
    return workdir, prepared.ref


@pytest.fixture
def copy(prepared, tmp_path):
    """A private copy of the prepared store, to damage."""
    workdir, ref = prepared
    shutil.copytree(workdir / "datasets", tmp_path / "datasets")
    return tmp_path, store.DatasetRef(tmp_path / "datasets", ref.name, ref.version)


def _edit_manifest(ref, **fields):
    path = ref.path / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, **fields}, indent=2))


def test_the_seal_covers_the_manifest(tmp_path):
    m = publish_tiny(tmp_path).manifest
    assert m["seal"] == store.manifest_seal(m) and store.is_sealed(m)
    assert store.manifest_seal({**m, "records_in": 0}) != m["seal"]
    assert store.manifest_seal({k: v for k, v in m.items() if k != "seal"}) == m["seal"]


def test_an_edited_manifest_fails_verify_naming_it(copy, capsys):
    work, ref = copy
    assert main(["datasets", "verify", str(ref), "--root", str(work / "datasets")]) == 0
    assert "OK" in capsys.readouterr().out
    _edit_manifest(ref, ranges={**ref.manifest()["ranges"], "train": [0, 13000]})
    assert [str(p) for p in store.verify(ref)][0].startswith("manifest.json: edited or damaged (seal ")
    assert main(["datasets", "verify", str(ref), "--root", str(work / "datasets")]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "  manifest.json: edited or damaged (seal" in out
    with pytest.raises(UserError, match=rf"^{ref}: manifest\.json: edited or damaged \(seal .*; the version is "
                                        rf"damaged: see `dcpipe datasets verify {ref}`"):
        store.check_ready(ref)


def test_an_unsealed_manifest_is_a_note_not_damage(copy, capsys):
    work, ref = copy
    manifest = ref.manifest()
    del manifest["seal"]
    (ref.path / "manifest.json").write_text(json.dumps(manifest))
    assert store.verify(ref) == []
    store.check_ready(ref, full=True)
    assert main(["datasets", "verify", str(ref), "--root", str(work / "datasets")]) == 0
    assert "note: manifest.json is unsealed (written by an older dcpipe)" in capsys.readouterr().out


def test_check_ready_passes_an_intact_version(prepared):
    _, ref = prepared
    store.check_ready(ref)
    store.check_ready(ref, full=True)


def test_check_ready_names_a_missing_chunk_as_verify_does(copy):
    _, ref = copy
    (ref.data_path / "image" / "c" / "1" / "0" / "0" / "0").unlink()
    with pytest.raises(UserError, match=rf"^{ref}: image: chunk c/1/0/0/0 \(samples 64-127\) missing; the "
                                        r"version is damaged"):
        store.check_ready(ref)
    assert "image: chunk c/1/0/0/0 (samples 64-127) missing" in [str(p) for p in store.verify(ref)]


def test_check_ready_full_finds_a_damaged_chunk_the_quick_check_does_not(copy):
    _, ref = copy
    chunk = ref.data_path / "label" / "c" / "0"
    chunk.write_bytes(bytes(b ^ 0xFF for b in chunk.read_bytes()))
    store.check_ready(ref)                                  # stat only: the file is there
    with pytest.raises(UserError, match=rf"^{ref}: label: chunk c/0 \(samples 0-63\) damaged \(sha256 "):
        store.check_ready(ref, full=True)


def test_check_ready_refuses_a_damaged_checksum_index(copy):
    _, ref = copy
    (ref.path / "checksums.json").write_text("{}")
    with pytest.raises(UserError, match=r"checksums\.json: does not match the manifest's index_sha256"):
        store.check_ready(ref)


def test_check_ready_refuses_a_rejected_version_with_the_gates_message(tmp_path):
    quality = {"passed": False, "gate": "min_rows_per_class",
               "message": "tiny@00c0ffee00c0ffee: quality gate failed: label '3' has 0 rows < "
                          "gates.min_rows_per_class 1; see report.html"}
    ref = publish_tiny(tmp_path, quality=quality).ref
    with pytest.raises(UserError, match=r"^tiny@00c0ffee00c0ffee: quality gate failed: label '3' has 0 rows .*"
                                        r"\(verdict recorded when tiny@00c0ffee00c0ffee was published; train on a "
                                        r"version that passed"):
        store.check_ready(ref)
