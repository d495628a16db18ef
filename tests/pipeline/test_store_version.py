"""The version id: only what changes the stored content changes it."""
import shutil

import pytest

from pipeline import provenance
from tests.conftest import small_config


def _version(csv, cfg):
    return provenance.content_version(provenance.describe_sources([csv]), cfg.data_part())


def test_where_and_how_it_runs_does_not_change_the_version(small_csv, tmp_path):
    base = _version(small_csv, small_config(small_csv))
    moved = tmp_path / "elsewhere" / small_csv.name           # same bytes, same name, other folder
    moved.parent.mkdir()
    shutil.copy(small_csv, moved)
    assert _version(moved, small_config(moved)) == base
    assert _version(small_csv, small_config(small_csv, cluster={"workers": 1, "memory_limit": "1GB"})) == base
    assert _version(small_csv, small_config(small_csv, train={"epochs": 5, "np": 4})) == base


@pytest.mark.parametrize("sections", [
    {"seed": 1},                                  # another split and augmentation
    {"store": {"codec": "lz4"}},                  # other stored bytes
    {"store": {"chunk_rows": None, "chunk_bytes": 1 << 20}},
    {"augment": {"copies": 0}},
    {"dataset": {"name": "other"}},
])
def test_what_changes_the_stored_content_changes_the_version(small_csv, sections):
    base = _version(small_csv, small_config(small_csv))
    seed = sections.pop("seed", None)
    cfg = small_config(small_csv, **sections)
    if seed is not None:
        cfg = cfg.with_overrides(seed=seed)
    assert _version(small_csv, cfg) != base


def test_source_content_and_name_change_the_version(small_csv, tmp_path):
    base = _version(small_csv, small_config(small_csv))
    renamed = tmp_path / "renamed.csv"
    shutil.copy(small_csv, renamed)
    assert _version(renamed, small_config(renamed)) != base
    small_csv.write_text(small_csv.read_text().replace("\n", "\n", 1) + "\n")   # one more byte
    assert _version(small_csv, small_config(small_csv)) != base


def test_code_hash_covers_the_store_subpackage(tmp_path, monkeypatch):
    copy = tmp_path / "pipeline"
    shutil.copytree(provenance.CODE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "CODE_DIR", copy)
    before = provenance.code_hash()
    writer = copy / "store" / "writer.py"
    writer.write_text(writer.read_text() + "\n# changed\n")
    assert provenance.code_hash() != before
