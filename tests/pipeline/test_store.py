"""The store: names, chunk arithmetic, codecs, plain-Zarr readability, checksums, catalog and gc."""
import json
import re
import typing
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given, strategies as st

from pipeline import open_dataset, store
from pipeline.config import StoreConfig
from pipeline.errors import UserError
from pipeline.store import DatasetRef, layout, publish
from tests.pipeline.store_data import N, VERSION, as_stored, publish_tiny, store_config, tiny_dataset


@pytest.mark.parametrize("spec, match", [
    ("../etc@" + VERSION, r"dataset name '\.\./etc' is not allowed"),       # traversal in the name
    ("/etc@" + VERSION, r"dataset name '/etc' is not allowed"),             # absolute path
    ("mnist@../../x", r"dataset version '\.\./\.\./x' is not allowed"),     # traversal in the version
    ("mnist@/tmp/abcdef01", r"dataset version '/tmp/abcdef01' is not allowed"),
    ("mnist@ABCDEF01", r"version 'ABCDEF01' is not allowed.*lowercase hex"),  # not our hash form
    (".hidden", r"dataset name '\.hidden' is not allowed"),                 # staging-like names
    ("", r"dataset name '' is not allowed"),
])
def test_unsafe_names_and_versions_are_refused(spec, match):
    with pytest.raises(UserError, match=match):
        store.parse_spec(spec)


def test_specs_parse_and_refs_refuse_bad_parts(tmp_path):
    assert store.parse_spec("mnist") == ("mnist", "latest")
    assert store.parse_spec("mnist@" + VERSION) == ("mnist", VERSION)
    with pytest.raises(UserError, match=r"dataset version 'x/y' is not allowed"):
        store.DatasetRef(root=tmp_path, name="mnist", version="x/y")


@given(bytes_per_sample=st.integers(1, 10**7), chunk_bytes=st.integers(1, 10**9))
def test_rows_per_chunk_fill_but_never_pass_the_target(bytes_per_sample, chunk_bytes):
    rows = store.rows_per_chunk(bytes_per_sample, chunk_bytes)
    assert rows >= 1
    assert rows * bytes_per_sample <= max(chunk_bytes, bytes_per_sample)   # never over, unless 1 row is
    assert (rows + 1) * bytes_per_sample > chunk_bytes                    # and no room for one more


def test_chunk_rows_overrides_chunk_bytes():
    assert store.chunk_rows(StoreConfig(chunk_bytes=1 << 20), 3136) == 334
    assert store.chunk_rows(StoreConfig(chunk_bytes=1 << 20, chunk_rows=64), 3136) == 64


def test_codec_registry_matches_the_config_choices():
    assert set(store.CODECS) == set(typing.get_args(StoreConfig.model_fields["codec"].annotation))


@pytest.mark.parametrize("codec", sorted(store.CODECS))
def test_every_codec_round_trips_and_opens_with_plain_xarray_and_zarr(tmp_path, codec):
    pub = publish_tiny(tmp_path, cfg=store_config(codec=codec, level=1))
    assert not pub.reused and pub.manifest["chunking"]["rows"] == 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # lz4 is a numcodecs extension; zarr says so
        ds = xr.open_zarr(pub.ref.data_path)       # plain xarray, no dcpipe code
        group = zarr.open(pub.ref.data_path, mode="r")
    xr.testing.assert_identical(ds.load(), as_stored(tiny_dataset()).compute())
    assert group["image"].chunks == (32, 8, 8, 1) and group["image"].shape == (N, 8, 8, 1)
    assert pub.manifest["variables"]["image"] == {"dims": ["sample", "height", "width", "channel"],
                                                  "shape": [N, 8, 8, 1], "dtype": "float32",
                                                  "chunks": [32, 8, 8, 1]}
    assert json.loads((pub.ref.path / "manifest.json").read_text()) == pub.manifest


def test_uint8_images_store_a_quarter_of_the_bytes_and_decode_to_within_half_a_step(tmp_path):
    packed = publish_tiny(tmp_path / "u8", cfg=store_config(image_dtype="uint8", codec="none"))
    plain = publish_tiny(tmp_path / "f32", cfg=store_config(codec="none"))
    chunk = "data.zarr/image/c/0/0/0/0"
    assert (packed.ref.path / chunk).stat().st_size * 4 == (plain.ref.path / chunk).stat().st_size
    assert packed.manifest["variables"]["image"]["dtype"] == "uint8"
    assert zarr.open(packed.ref.data_path, mode="r")["image"].dtype == np.uint8
    decoded = xr.open_zarr(packed.ref.data_path)["image"].values   # k * scale_factor, by plain xarray
    np.testing.assert_allclose(decoded, tiny_dataset()["image"].values, atol=0.5 / 255 + 1e-7)


def test_uint8_images_saturate_outside_0_1_instead_of_wrapping(tmp_path):
    ds = tiny_dataset()
    ds["image"] = ds["image"] * 2 - 0.5                       # values in [-0.5, 1.5]
    ref = DatasetRef(root=tmp_path, name="tiny", version=VERSION)
    pub = publish(ds, None, {"records_in": N}, ref, store_config(image_dtype="uint8"))
    stored = xr.open_zarr(pub.ref.data_path)["image"].values
    np.testing.assert_allclose(stored, np.clip(ds["image"].values, 0, 1), atol=0.5 / 255 + 1e-7)


def test_manifest_pins_every_file(tmp_path):
    m = publish_tiny(tmp_path).manifest
    index = json.loads((tmp_path / "tiny" / VERSION / "checksums.json").read_text())
    assert m["checksums"]["n_files"] == len(index["files"])
    assert "data.zarr/image/c/0/0/0/0" in index["files"]
    assert set(m["checksums"]["arrays"]) >= {"image", "label", "(group metadata)", "quarantine"}
    assert m["parent_version"] is None and m["dataset"] == "tiny" and m["version"] == VERSION


def _damage(path, offset=5):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("harm, expected", [
    # one flipped byte in one image chunk names the array, the chunk and its samples
    (lambda d: _damage(d / "image/c/3/0/0/0"), r"^image: chunk c/3/0/0/0 \(samples 96-127\) damaged"),
    # a deleted chunk would read back as fill values: verify names it
    (lambda d: (d / "label/c/2").unlink(), r"^label: chunk c/2 \(samples 64-95\) missing$"),
    # a stray file inside an array
    (lambda d: (d / "label/c/99").write_bytes(b"x"), r"^label: unexpected chunk c/99"),
    # edited array metadata
    (lambda d: (d / "image/zarr.json").write_text((d / "image/zarr.json").read_text() + " "),
     r"^image: file data\.zarr/image/zarr\.json damaged"),
])
def test_verify_names_the_damaged_array_and_chunk(tmp_path, harm, expected):
    ref = publish_tiny(tmp_path).ref
    assert store.verify(ref) == []
    harm(ref.data_path)
    problems = [str(p) for p in store.verify(ref)]
    assert len(problems) == 1 and re.match(expected, problems[0]), problems


def test_verify_refuses_an_edited_checksum_index(tmp_path):
    ref = publish_tiny(tmp_path).ref
    (ref.path / "checksums.json").write_text((ref.path / "checksums.json").read_text().replace("a", "b", 1))
    assert [str(p) for p in store.verify(ref)] == [
        "checksums.json: does not match the manifest's index_sha256 (index damaged or edited)"]


def test_same_version_published_again_is_reused_unchanged(tmp_path):
    first = publish_tiny(tmp_path)
    again = publish_tiny(tmp_path, seed=9)         # would differ, but the version id says it is the same
    assert again.reused and again.manifest == first.manifest
    assert np.array_equal(xr.open_zarr(first.ref.data_path)["label"].values, tiny_dataset(0)["label"].values)


def test_staging_left_by_a_dead_writer_is_cleaned_by_the_next_publish(tmp_path):
    dead = tmp_path / "tiny" / f".staging-{VERSION}-999999-abcdef"
    (dead / "data.zarr").mkdir(parents=True)
    said = []
    pub = store.publish(tiny_dataset(), None, {"created": "x"}, store.DatasetRef(tmp_path, "tiny", VERSION),
                        store_config(), log=said.append)
    assert not dead.exists() and pub.ref.exists() and "interrupted writer" in said[0]
    assert store.verify(pub.ref) == []


def test_latest_parent_and_open_dataset(tmp_path):
    a = publish_tiny(tmp_path, version="aaaaaaaa00000001", seed=1)
    b = publish_tiny(tmp_path, version="0000000000000002", seed=2)   # newer, though it sorts first
    assert [r.version for r in store.versions(tmp_path, "tiny")] == [a.ref.version, b.ref.version]
    assert b.manifest["parent_version"] == a.ref.version
    latest = open_dataset("tiny", root=tmp_path)
    xr.testing.assert_identical(latest.load(), as_stored(tiny_dataset(2), b.ref.version).compute())
    older = open_dataset("tiny", a.ref.version, root=tmp_path)
    xr.testing.assert_identical(older.load(), as_stored(tiny_dataset(1), a.ref.version).compute())
    with pytest.raises(UserError, match=r"dataset version tiny@ffffffffffffffff not found"):
        open_dataset("tiny", "ffffffffffffffff", root=tmp_path)
    with pytest.raises(UserError, match=r"dataset 'other' has no versions; prepare one"):
        open_dataset("other", root=tmp_path)


def test_diff_names_changed_config_sources_and_content(tmp_path):
    a = publish_tiny(tmp_path, version="aaaaaaaa00000001", seed=1).manifest
    b = publish_tiny(tmp_path, version="aaaaaaaa00000002", seed=2).manifest
    lines = store.diff(a, b)
    assert "config.seed: 1 -> 2" in lines
    assert any(line.startswith("sources.a.csv: ") for line in lines)
    assert lines[-1] == "stored content differs in: (group metadata), image, label"   # it holds the version id
    assert store.diff(a, a) == []


def test_gc_keeps_the_newest_and_removes_dead_staging(tmp_path):
    refs = [publish_tiny(tmp_path, version=f"aaaaaaaa0000000{i}", seed=i).ref for i in range(3)]
    dead = tmp_path / "tiny" / f".staging-{'b' * 16}-999999-abcdef"
    dead.mkdir()
    planned = store.gc(tmp_path, keep=1, dry_run=True)
    assert planned.removed == refs[:2] and planned.cleaned == [dead] and refs[0].exists() and dead.exists()
    done = store.gc(tmp_path, keep=1)
    assert done.removed == refs[:2] and not refs[0].exists() and not refs[1].exists() and not dead.exists()
    assert store.versions(tmp_path, "tiny") == [refs[2]] and store.verify(refs[2]) == []
    with pytest.raises(UserError, match=r"gc --keep must be at least 1 \(got 0\)"):
        store.gc(tmp_path, keep=0)


def test_gc_leaves_a_version_whose_writer_holds_the_lock(tmp_path):
    old = publish_tiny(tmp_path, version="aaaaaaaa00000001").ref
    publish_tiny(tmp_path, version="aaaaaaaa00000002")
    with layout.version_lock(tmp_path, "tiny", old.version):
        assert store.gc(tmp_path, keep=1).removed == []
    assert old.exists()
