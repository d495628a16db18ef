import dask
import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from pipeline.augment import augment_train
from pipeline.config import AugmentConfig
from pipeline.errors import UserError

CFG = AugmentConfig(copies=2, ops=[{"op": "rotate", "max_degrees": 15.0}, {"op": "shift", "max_pixels": 2},
                                   {"op": "gaussian_noise", "std": 0.05}])
TEXT = AugmentConfig(copies=2, ops=[{"op": "random_deletion", "p": 0.3}, {"op": "random_swap", "n_swaps": 2},
                                    {"op": "synonym_replace", "synonyms": {"w3": ["w4", "w5"]}, "p": 0.5}])
TABULAR = AugmentConfig(copies=2, ops=[{"op": "feature_noise", "std": 0.1}, {"op": "mixup", "alpha": 0.4}])


def _dataset(n=100, chunks=30):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(n, 8, 8, 1)).astype("float32")
    ds = xr.Dataset({"image": (("sample", "height", "width", "channel"), images),
                     "label": ("sample", np.arange(n) % 10),
                     "augmented": ("sample", np.zeros(n, bool))})
    return ds.chunk({"sample": chunks})


def _text_dataset(n=100, chunks=30):
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 9, size=n)
    tokens = np.where(np.arange(8) < lengths[:, None], rng.integers(1, 10, size=(n, 8)), 0).astype("int32")
    vocab = ["<pad>"] + [f"w{i}" for i in range(1, 10)]
    ds = xr.Dataset({"tokens": (("sample", "position"), tokens, {"vocabulary": vocab}),
                     "label": ("sample", np.arange(n) % 2), "augmented": ("sample", np.zeros(n, bool))})
    return ds.chunk({"sample": chunks})


def _tabular_dataset(n=100, chunks=30):
    rng = np.random.default_rng(2)
    ds = xr.Dataset({"features": (("sample", "feature"), rng.normal(size=(n, 5)).astype("float32")),
                     "label": ("sample", np.arange(n) % 3), "augmented": ("sample", np.zeros(n, bool))})
    return ds.chunk({"sample": chunks})


CASES = [(_dataset, CFG, "image"), (_text_dataset, TEXT, "tokens"), (_tabular_dataset, TABULAR, "features")]


def test_copies_follow_their_block_and_originals_are_untouched():
    ds = _dataset()
    out = augment_train(ds, n_train=60, cfg=CFG, seed=0, chunk_rows=16).compute(scheduler="sync")
    assert out.sizes["sample"] == 60 * 3 + 40
    # first block: 16 originals, then 2 x 16 copies of them
    np.testing.assert_array_equal(out["image"][:16], ds["image"][:16])
    assert out["augmented"][:16].sum() == 0 and out["augmented"][16:48].all()
    np.testing.assert_array_equal(out["label"][16:32], ds["label"][:16])
    assert not np.array_equal(out["image"][16:32], ds["image"][:16])
    assert float(out["image"].min()) >= 0 and float(out["image"].max()) <= 1
    # val/test rows come after the train range, unchanged
    np.testing.assert_array_equal(out["image"][180:], ds["image"][60:])


def test_bytes_identical_for_1_2_and_4_workers_and_input_chunking():
    results = []
    for workers, in_chunks in ((1, 30), (2, 7), (4, 100)):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                          dashboard_address=":0") as cluster, Client(cluster):
            results.append([augment_train(make(chunks=in_chunks), 60, cfg, seed=3, chunk_rows=16)[var]
                            .values.tobytes() for make, cfg, var in CASES])
    for i, (make, cfg, var) in enumerate(CASES):
        assert results[0][i] == results[1][i] == results[2][i], var
        with dask.config.set(scheduler="sync"):
            assert augment_train(make(), 60, cfg, seed=4, chunk_rows=16)[var].values.tobytes() != results[0][i]
            # the copies really differ from the originals
            out = augment_train(make(), 60, cfg, seed=3, chunk_rows=16)[var].values
        assert not np.array_equal(out[16:32], out[:16]), var


@pytest.mark.parametrize("make, cfg, var", CASES)
def test_graph_keys_name_the_augment_stage(make, cfg, var):
    out = augment_train(make(), 60, cfg, seed=0, chunk_rows=16)
    names = {key[0] if isinstance(key, tuple) else key for key in dict(out[var].data.dask)}
    assert any(name.startswith(f"augment-{var}-") for name in names)
    flags = {key[0] for key in dict(out["augmented"].data.dask) if isinstance(key, tuple)}
    assert any(name.startswith("augment-flag-") for name in flags)


def test_text_copies_keep_padding_at_the_end_and_use_the_vocabulary():
    out = augment_train(_text_dataset(), 60, TEXT, seed=0, chunk_rows=16).compute(scheduler="sync")
    tokens = out["tokens"].values
    real = tokens != 0
    # no pad before a real token, and every row keeps at least one token
    assert (np.diff(real.astype(int), axis=1) <= 0).all() and real[:, 0].all()
    assert set(np.unique(tokens)) <= set(range(10))


def test_ops_for_a_missing_variable_is_a_user_error():
    with pytest.raises(UserError, match=r"augment\.ops: 'feature_noise' works on tabular data \(variable 'features'\)"):
        augment_train(_dataset(), 60, TABULAR, seed=0, chunk_rows=16)


def test_zero_copies_is_identity():
    ds = _dataset()
    out = augment_train(ds, 60, AugmentConfig(copies=0), seed=0, chunk_rows=16)
    xr.testing.assert_identical(out.compute(), ds.compute())


def test_prepare_records_the_ops_in_the_manifest_and_augments_only_train(small_csv, tmp_path):
    from pipeline.cluster import local_client
    from pipeline.prepare import prepare
    from tests.conftest import small_config

    ops = [{"op": "crop_resize", "min_scale": 0.9}, {"op": "brightness_contrast", "brightness": 0.05}]
    cfg = small_config(small_csv, augment={"copies": 2, "ops": ops}, cluster={"workers": 1})
    with local_client(cfg.cluster, log=lambda *_: None) as client:
        result = prepare(cfg, tmp_path / "datasets", client, log=lambda *_: None, show_progress=False)
    m = result.manifest
    assert m["augmentations"] == {"copies": 2, "ops": [{"op": "crop_resize", "min_scale": 0.9},
                                                       {"op": "brightness_contrast", "brightness": 0.05,
                                                        "contrast": 0.1}]}
    ds = xr.open_zarr(result.ref.data_path)
    train_end = m["ranges"]["train"][1]
    assert train_end == 3 * m["n_train"] and int(ds["augmented"].sum()) == 2 * m["n_train"]
    assert not ds["augmented"][train_end:].any()
    # the fitted image transform is stored with the version, as JSON in the Zarr attributes
    from pipeline.transforms import FeatureTransform
    assert FeatureTransform.from_json(ds.attrs["features"]).transforms[0].kind == "pixels"
