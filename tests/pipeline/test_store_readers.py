"""The store as readers without dcpipe see it: exact CF decoding, CF attributes, and the examples of
README.md and docs/store.md run as written against a stored version."""
import json
import re
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from pipeline.store import DatasetRef, publish
from tests.pipeline.store_data import N, VERSION, store_config, tiny_dataset

ROOT = Path(__file__).resolve().parents[2]
SPLIT = np.repeat(np.array([0, 1, 2], dtype="int8"), [200, 50, 50])   # train, val, test
RANGES = {"train": [0, 200], "val": [200, 250], "test": [250, N]}


def _publish(root: Path) -> DatasetRef:
    """The tiny dataset with its image spanning 0..1, a split flag and label names, packed as uint8."""
    ds = tiny_dataset()
    image = ds["image"].data.copy()
    image[0] = 1.0
    image[1] = 0.0
    ds = ds.assign(image=(ds["image"].dims, image), split=("sample", da.from_array(SPLIT, chunks=32)))
    ds.attrs["label_names"] = [str(i) for i in range(10)]
    ref = DatasetRef(root=root, name="tiny", version=VERSION)
    return publish(ds, None, {"records_in": N, "ranges": RANGES}, ref, store_config(image_dtype="uint8")).ref


def _example(doc: str, marker: str, version: Path) -> str:
    """The first ```python block of ``doc`` that holds ``marker``, pointed at ``version``'s folder."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)
    code, = [b for b in blocks if marker in b][:1]
    return re.sub(r'"dcpipe-work/datasets/mnist/[^"]*"', repr(str(version)), code)


def test_plain_xarray_decodes_packed_images_to_exactly_0_1_with_cf_attributes(tmp_path):
    ref = _publish(tmp_path)
    ds = xr.open_zarr(ref.data_path)
    image = ds["image"].values
    assert image.dtype == "float64" and image.min() == 0.0 and image.max() == 1.0        # not 1.0000000591
    assert zarr.open(ref.data_path, mode="r")["image"].attrs["scale_factor"] == 1 / 255  # exact in JSON
    assert ds["image"].attrs == {"long_name": "pixel intensity", "units": "1"}
    assert ds["label"].attrs == {"long_name": "class label", "flag_values": list(range(10)),
                                 "flag_meanings": "0 1 2 3 4 5 6 7 8 9"}
    assert ds.attrs["version"] == VERSION and ds.attrs["dataset"] == "tiny"


def test_readme_selection_example_keeps_the_train_samples(tmp_path):
    ref = _publish(tmp_path)
    scope: dict = {}
    exec(_example("README.md", "xr.open_zarr", ref.path), scope)
    train = scope["train"]
    assert train.sizes["sample"] == 200 and not np.isnan(train["image"].values).any()
    xr.testing.assert_identical(train.load(), scope["ds"].isel(sample=slice(0, 200)).load())


def test_xbatcher_example_of_the_store_docs_batches_a_stored_version(tmp_path):
    ref = _publish(tmp_path)
    scope: dict = {}
    exec(_example("docs/store.md", "xbatcher", ref.path), scope)
    assert len(scope["batches"]) == 200 // 64
    x, y = scope["x"], scope["y"]                          # the last batch the example looped over
    assert x.shape == (64, 8, 8, 1) and 0 <= x.min() and x.max() <= 1
    stored = xr.open_zarr(ref.data_path)
    np.testing.assert_array_equal(x, stored["image"].values[128:192])
    np.testing.assert_array_equal(y, stored["label"].values[128:192])
    assert json.loads((ref.path / "manifest.json").read_text())["ranges"] == RANGES
