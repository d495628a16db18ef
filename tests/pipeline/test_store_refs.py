"""NAME@VERSION specs: latest, full versions, unique prefixes, tags, and rejected versions."""
import json

import pytest

from pipeline import store
from pipeline.errors import UserError
from tests.pipeline.store_data import publish_tiny

A, B, C = "abcd000000000001", "abcd000000000002", "beef000000000003"


@pytest.fixture
def root(tmp_path):
    for i, version in enumerate((A, B, C)):
        publish_tiny(tmp_path, version=version, seed=i)
    return tmp_path


@pytest.mark.parametrize("spec, version", [
    ("tiny", C),                    # no selector: the newest
    ("tiny@latest", C),
    (f"tiny@{A}", A),               # a full version
    ("tiny@beef", C),               # a unique prefix of 4
    ("tiny@abcd000000000002", B),
])
def test_specs_resolve(root, spec, version):
    assert store.resolve_spec(root, spec) == store.DatasetRef(root, "tiny", version)


@pytest.mark.parametrize("spec, match", [
    # two versions start with abcd: both are listed
    ("tiny@abcd", rf"^tiny@abcd: version prefix is ambiguous \(2 versions: {A}, {B}\); give more digits$"),
    # hex that matches nothing points to the list
    ("tiny@cafe", r"dataset version tiny@cafe not found; see `dcpipe datasets list`"),
    ("tiny@ffffffffffffffff", r"dataset version tiny@ffffffffffffffff not found; see `dcpipe datasets list`"),
    # a prefix shorter than 4 could match anything
    ("tiny@abc", r"dataset version 'abc' is too short; give a version .* prefix of at least 4"),
    # an unknown tag says how to make one
    ("tiny@prod", r"dataset 'tiny' has no tag 'prod'; see `dcpipe datasets list`, or tag a version with "
                  r"`dcpipe datasets tag tiny@VERSION prod`"),
    # neither hex nor a tag
    ("tiny@ABCDEF01", r"dataset version 'ABCDEF01' is not allowed; give a version \(8-64 lowercase hex"),
    ("nope", r"dataset 'nope' has no versions; prepare one with `dcpipe prepare`"),
])
def test_bad_specs_say_what_to_do(root, spec, match):
    with pytest.raises(UserError, match=match):
        store.resolve_spec(root, spec)


def test_tags_resolve_move_and_are_stored_as_json(root):
    a, c = store.resolve_spec(root, f"tiny@{A}"), store.resolve_spec(root, f"tiny@{C}")
    assert store.tag(a, "prod") is None
    assert store.resolve_spec(root, "tiny@prod") == a
    assert store.tag(c, "prod") == A                      # moved: the old version is returned
    store.tag(c, "v1.2")
    assert store.resolve_spec(root, "tiny@prod") == c and store.tags_of(c) == ["prod", "v1.2"]
    assert json.loads((root / "tiny" / "tags.json").read_text()) == {"prod": C, "v1.2": C}
    assert not list((root / "tiny").glob(".tags.json.tmp-*"))


@pytest.mark.parametrize("name, match", [
    ("latest", r"tag 'latest' is not allowed"),           # would shadow latest
    ("beef", r"tag 'beef' is not allowed; .*not all hex"),  # would look like a version prefix
    ("DEADBEEF", r"tag 'DEADBEEF' is not allowed"),        # hex in capitals too
    ("1st", r"tag '1st' is not allowed; a tag starts with a letter"),
    ("a/b", r"tag 'a/b' is not allowed"),
])
def test_tag_names_that_could_be_confused_are_refused(root, name, match):
    with pytest.raises(UserError, match=match):
        store.tag(store.resolve_spec(root, "tiny"), name)


def test_a_tag_of_a_removed_version_says_so(root):
    ref = store.resolve_spec(root, f"tiny@{A}")
    store.tag(ref, "old")
    store.gc(root, keep=1)       # tagged versions are kept by gc ...
    assert ref.exists()
    (root / "tiny" / "tags.json").write_text(json.dumps({"old": "0000aaaa0000aaaa"}))   # ... so fake one
    with pytest.raises(UserError, match=r"tiny@old: tag 'old' points to tiny@0000aaaa0000aaaa, which is no "
                                        r"longer stored"):
        store.resolve_spec(root, "tiny@old")


def test_latest_skips_rejected_versions_but_a_named_one_resolves(tmp_path):
    rejected = {"passed": False, "gate": "max_quarantined_fraction", "message": "tiny@x: quality gate failed"}
    good = publish_tiny(tmp_path, version=A, quality={"passed": True, "gate": None, "message": None}).ref
    bad = publish_tiny(tmp_path, version=B, seed=1, quality=rejected).ref
    assert store.resolve_spec(tmp_path, "tiny") == good
    assert store.resolve_spec(tmp_path, f"tiny@{B}") == bad and store.rejected_gate(bad.manifest()) == \
        "max_quarantined_fraction"
    (good.path / "manifest.json").unlink()       # only the rejected one is left
    with pytest.raises(UserError, match=r"tiny@latest: all 1 version\(s\) of 'tiny' failed a quality gate "
                                        rf"\(newest tiny@{B}: max_quarantined_fraction\)"):
        store.resolve_spec(tmp_path, "tiny@latest")
