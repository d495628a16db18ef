import dask
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from pipeline import features, ingest
from pipeline.config import JobConfig, SplitConfig
from pipeline.errors import UserError
from pipeline.validate import validate


def _split_rows(csv, npartitions, cfg):
    records = ingest.read_records(cfg.source).repartition(npartitions=npartitions)
    rows = features.assign_split(validate(records, cfg.schema).rows, cfg.split, cfg.seed)
    with dask.config.set(scheduler="sync"):
        return rows.compute()


def test_split_is_stratified_and_independent_of_partitioning(small_csv):
    cfg = JobConfig().with_overrides(source={"path": str(small_csv)})
    one = _split_rows(small_csv, 1, cfg)
    three = _split_rows(small_csv, 3, cfg)
    # same rows, same split, same order, whatever the partitioning
    assert one[["line", "split", "label"]].reset_index(drop=True).equals(
        three[["line", "split", "label"]].reset_index(drop=True))
    # 40 rows per digit -> exactly 32 / 4 / 4 per digit
    counts = one.groupby(["label", "split"]).size().unstack()
    assert (counts[0] == 32).all() and (counts[1] == 4).all() and (counts[2] == 4).all()
    # ordered by split, and shuffled inside a split (not in file order)
    assert (np.diff(one["split"].to_numpy()) >= 0).all()
    assert not (np.diff(one.loc[one["split"] == 0, "line"].to_numpy()) > 0).all()


def test_split_changes_with_seed(small_csv):
    cfg = JobConfig().with_overrides(source={"path": str(small_csv)})
    a = _split_rows(small_csv, 2, cfg)
    b = _split_rows(small_csv, 2, cfg.with_overrides(seed=1))
    assert not a["line"].reset_index(drop=True).equals(b["line"].reset_index(drop=True))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 64), train=st.floats(0.05, 0.9))
def test_sort_divisions_are_increasing_and_cover_all_keys(n, train):
    rest = 1 - train
    cfg = SplitConfig(train=train, val=rest / 2, test=1 - train - rest / 2)
    divisions = features.sort_divisions(cfg, n)
    assert divisions == sorted(set(divisions))
    assert divisions[0] == 0 and divisions[-1] == 3 * 2**61 - 1
    assert len(divisions) <= n + 1


def test_to_dataset_scales_pixels_and_keeps_provenance(small_csv):
    cfg = JobConfig().with_overrides(source={"path": str(small_csv)})
    records = ingest.read_records(cfg.source)
    rows = features.assign_split(validate(records, cfg.schema).rows, cfg.split, cfg.seed)
    with dask.config.set(scheduler="sync"):
        rows = rows.persist()
        lengths = tuple(rows.map_partitions(len).compute())
        ds = features.to_dataset(rows, lengths, cfg, [small_csv.name]).compute()
    assert ds["image"].shape == (400, 28, 28, 1) and ds["image"].dtype == np.float32
    assert float(ds["image"].min()) == 0.0 and float(ds["image"].max()) == 1.0
    line = int(ds["source_line"][0])
    raw = small_csv.read_text().splitlines()[line - 1].split(",")
    np.testing.assert_allclose(ds["image"][0].values.ravel() * 255, np.array(raw[:-1], float), atol=1e-3)
    assert int(ds["label"][0]) == int(raw[-1])
    assert set(np.unique(ds["source_file"])) == {0}


def test_stored_images_equal_the_serving_transform_of_the_raw_records(small_csv):
    from pipeline.transforms import FeatureTransform

    cfg = JobConfig().with_overrides(source={"path": str(small_csv)})
    records = ingest.read_records(cfg.source).repartition(npartitions=3)
    rows = features.assign_split(validate(records, cfg.schema).rows, cfg.split, cfg.seed)
    with dask.config.set(scheduler="sync"):
        rows = rows.persist()
        lengths = tuple(rows.map_partitions(len).compute())
        ds = features.to_dataset(rows, lengths, cfg, [small_csv.name]).compute()
    # serving: the JSON kept with the dataset, applied to raw CSV records read with plain pandas
    served = FeatureTransform.from_json(ds.attrs["features"])
    raw = pd.read_csv(small_csv, header=None, names=features.pixel_columns(cfg.schema) + ["label"])
    lines = ds["source_line"].values - 1
    images = served.transform(raw.iloc[lines])["image"]
    assert images.tobytes() == ds["image"].values.tobytes()
    one = served.transform(raw.iloc[[lines[7]]])["image"]  # one record online
    assert one.tobytes() == ds["image"].values[7:8].tobytes()


@pytest.mark.parametrize("extra, match", [
    ({"resize": [14, 14]}, r"features\.groups\[0\]: \{'resize': \[14, 14\]\} would train on other images"),  # not served
    ({"value_max": 1.0}, r"\{'value_max': 1\.0\} would train on other images .*set the schema instead"),
])
def test_an_image_group_must_scale_as_the_schema_serves(extra, match):
    group = {"kind": "pixels", "name": "image", "columns": ["p*"], "shape": [28, 28, 1], **extra}
    with pytest.raises(UserError, match=match):
        features.resolve_features(JobConfig().with_overrides(features={"groups": [group]}))


def test_an_image_group_like_the_schema_is_accepted():
    group = {"kind": "pixels", "name": "image", "columns": ["p*"], "shape": [28, 28, 1]}
    cfg = JobConfig().with_overrides(features={"groups": [group]})
    assert features.resolve_features(cfg).groups[0]["columns"] == ["p*"]


def test_sort_divisions_balance_the_partitions_of_every_split():
    """Each split's keys fill only its share of its band (the split goes by hash): the boundaries
    must follow, or all of val and of test fall in a partition or two."""
    rng = np.random.default_rng(0)
    n, npartitions = 400_000, 32
    frame = pd.DataFrame({"label": rng.integers(0, 10, n),
                          "order": rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)})
    cfg = SplitConfig()
    frame["split"] = features._assign(frame, features._class_cutoffs(frame, cfg))
    keys = features._sort_key(frame).to_numpy()
    divisions = features.sort_divisions(cfg, npartitions)
    sizes = np.bincount(np.searchsorted(divisions[1:-1], keys, side="right"), minlength=len(divisions) - 1)
    assert sizes.sum() == n
    assert sizes.max() <= 1.2 * n / npartitions, sizes      # the old boundaries: 3.2x (val 40,001, test 39,999)
    assert (sizes > 0).all(), sizes
