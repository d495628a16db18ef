import dask
import numpy as np
import xarray as xr
from distributed import Client, LocalCluster

from pipeline.augment import augment_train
from pipeline.config import AugmentConfig

CFG = AugmentConfig(copies=2, max_shift=2, max_rotation=15.0, noise_std=0.05)


def _dataset(n=100, chunks=30):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(n, 8, 8, 1)).astype("float32")
    ds = xr.Dataset({"image": (("sample", "height", "width", "channel"), images),
                     "label": ("sample", np.arange(n) % 10),
                     "augmented": ("sample", np.zeros(n, bool))})
    return ds.chunk({"sample": chunks})


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
            out = augment_train(_dataset(chunks=in_chunks), 60, CFG, seed=3, chunk_rows=16)
            results.append(out["image"].values.tobytes())
    assert results[0] == results[1] == results[2]
    with dask.config.set(scheduler="sync"):
        other_seed = augment_train(_dataset(), 60, CFG, seed=4, chunk_rows=16)["image"].values.tobytes()
    assert other_seed != results[0]


def test_zero_copies_is_identity():
    ds = _dataset()
    out = augment_train(ds, 60, AugmentConfig(copies=0), seed=0, chunk_rows=16)
    xr.testing.assert_identical(out.compute(), ds.compute())
