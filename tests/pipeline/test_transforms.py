"""Feature transforms: fitted on train with Dask, the same bytes at serving from the saved JSON."""
import json

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline.config import FeaturesConfig
from pipeline.errors import UserError
from pipeline.transforms import FeatureTransform, kinds

WORDS = ["good", "bad", "film", "plot", "actor", "great", "boring", "the", "a", "rare"]

GROUPS = [
    {"kind": "standard", "name": "std", "columns": ["a", "b"]},
    {"kind": "minmax", "name": "mm", "columns": ["a"]},
    {"kind": "robust", "name": "rob", "columns": ["b"]},
    {"kind": "ordinal", "name": "ord", "columns": ["color", "size"]},
    {"kind": "onehot", "name": "hot", "columns": ["color"], "min_frequency": 2},
    {"kind": "sequence", "name": "seq", "columns": ["review"], "length": 6, "min_frequency": 2, "max_size": 8},
    {"kind": "tfidf", "name": "tfidf", "columns": ["review"]},
    {"kind": "hashing", "name": "hash", "columns": ["review"], "n_features": 16},
    {"kind": "pixels", "name": "image", "columns": ["p*"], "shape": [4, 4, 1], "resize": [8, 8],
     "layout": "channels_first"},
]


def _records(n=120, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(5, 2, n), "b": rng.exponential(3, n),
        "color": rng.choice(["red", "green", "blue", "teal"], n, p=[0.5, 0.3, 0.15, 0.05]),
        "size": rng.choice(["s", "m", "l"], n),
        "review": [" ".join(rng.choice(WORDS, rng.integers(1, 9), p=[.2, .15, .15, .1, .1, .1, .05, .1, .04, .01]))
                   for _ in range(n)],
        "split": np.where(np.arange(n) < 0.8 * n, 0, np.where(np.arange(n) < 0.9 * n, 1, 2)).astype("int8"),
    })
    pixels = pd.DataFrame(rng.integers(0, 256, (n, 16)), columns=[f"p{i}" for i in range(16)])
    frame = pd.concat([frame, pixels], axis=1)
    frame.loc[3, "a"] = np.nan  # a missing value maps to the fitted centre
    frame.loc[frame["color"] == "teal", "color"] = "red"
    frame.loc[5, "color"] = "teal"  # one train row: below min_frequency 2 of the one-hot group
    return frame


@pytest.fixture(scope="module")
def fitted():
    raw = _records()
    with dask.config.set(scheduler="sync"):
        ft = FeatureTransform.fit(dd.from_pandas(raw, npartitions=3), FeaturesConfig(groups=GROUPS))
    return raw, ft


def test_train_time_and_serving_features_are_identical(fitted, tmp_path):
    raw, ft = fitted
    with dask.config.set(scheduler="sync"):
        lazy = ft.transform_dask(dd.from_pandas(raw, npartitions=4))
        at_train = dask.compute(lazy)[0]
    served = FeatureTransform.load(tmp_path / "v1" if ft.save(tmp_path / "v1") else None)
    batch = served.transform(raw)                      # batch inference on the same raw records
    online = [served.transform(raw.iloc[[i]]) for i in (0, 57, 119)]  # one record at a time
    for name in at_train:
        assert at_train[name].tobytes() == batch[name].tobytes(), name
        for row, i in zip(online, (0, 57, 119)):
            assert row[name].tobytes() == batch[name][i:i + 1].tobytes(), name
    assert served == FeatureTransform.from_json(ft.to_json())


def test_statistics_come_from_train_rows_only(fitted):
    raw, ft = fitted
    state = {t.name: t.state for t in ft.transforms}
    train = raw[raw["split"] == 0]
    np.testing.assert_allclose(state["std"]["offset"], train[["a", "b"]].mean().to_numpy())
    np.testing.assert_allclose(state["std"]["scale"], train[["a", "b"]].std(ddof=0).to_numpy())
    assert state["mm"]["offset"] == [train["a"].min()]
    assert state["mm"]["scale"][0] == pytest.approx(train["a"].max() - train["a"].min())
    # Dask merges per-chunk percentiles: the centre is near the median, not exactly on it
    assert train["b"].quantile(0.35) < state["rob"]["offset"][0] < train["b"].quantile(0.65)
    assert state["std"]["offset"] != pytest.approx(raw[["a", "b"]].mean().to_list())


def test_unseen_categories_get_code_zero(fitted):
    _, ft = fitted
    out = ft.transform(pd.DataFrame({"a": [1.0], "b": [1.0], "color": ["purple"], "size": [None],
                                     "review": ["good"], **{f"p{i}": [0] for i in range(16)}}))
    assert out["ord"].tolist() == [[0, 0]]
    hot = ft.transforms[4]
    # teal is rarer than min_frequency 2 in train, so it is unseen as well
    assert "teal" in ft.transforms[3].state["categories"]["color"]
    assert "teal" not in hot.state["categories"]["color"] and out["hot"][0, 0] == 1 and out["hot"].sum() == 1
    assert out["std"].dtype == np.float32 and out["ord"].dtype == np.int32


def test_vocabulary_respects_min_frequency_and_max_size(fitted):
    raw, ft = fitted
    vocab = ft.transforms[5].state["vocabulary"]
    assert vocab[:2] == ["<pad>", "<unk>"] and len(vocab) == 8 and "rare" not in vocab
    seq = ft.transform(pd.DataFrame({"review": ["Good FILM, rare words here good good good"]}).assign(
        **{c: raw[c].iloc[:1].to_numpy() for c in raw.columns if c != "review"}))["seq"]
    good, film = vocab.index("good"), vocab.index("film")
    assert seq.tolist() == [[good, film, 1, 1, 1, good]]  # truncated to 6; unknown -> 1
    short = ft.transform(raw.iloc[:1].assign(review="film"))["seq"]
    assert short.tolist() == [[film, 0, 0, 0, 0, 0]]  # padded with 0


def test_tfidf_matches_scikit_learn_on_train(fitted):
    raw, ft = fitted
    train = raw[raw["split"] == 0]
    ref = TfidfVectorizer(token_pattern=r"\w+").fit(train["review"])
    t = ft.transforms[6]
    order = [ref.vocabulary_[w] for w in t.state["vocabulary"]]
    np.testing.assert_allclose(t.state["idf"], ref.idf_[order])
    np.testing.assert_allclose(ft.transform(raw)["tfidf"], ref.transform(raw["review"]).toarray()[:, order],
                               rtol=1e-6, atol=1e-7)


def test_hashing_counts_every_token_and_pixels_resize_channels_first(fitted):
    raw, ft = fitted
    out = ft.transform(raw)
    assert out["hash"].sum(axis=1).tolist() == [len(r.split()) for r in raw["review"]]
    assert out["image"].shape == (len(raw), 1, 8, 8)
    assert out["image"].min() >= 0 and out["image"].max() <= 1


def test_graph_keys_name_the_features_stage(fitted):
    raw, ft = fitted
    frame = dd.from_pandas(raw, npartitions=2)
    lazy = ft.transform_dask(frame)
    for name, arr in lazy.items():
        assert arr.name.startswith(f"features-{name}-")
        # every layer beyond the input frame's is this stage's, one task per partition
        inputs = set(dict(frame.__dask_graph__()))
        added = {key for key in dict(arr.dask) if key not in inputs}
        assert added == {(arr.name, i) + (0,) * (arr.ndim - 1) for i in range(2)}


def test_saved_state_is_plain_json(fitted, tmp_path):
    _, ft = fitted
    path = ft.save(tmp_path)
    data = json.loads(path.read_text())
    assert data["format"] == "dcpipe-features/1" and len(data["transforms"]) == len(GROUPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.json"]


def test_kinds_cover_the_issue():
    assert set(kinds()) == {"standard", "minmax", "robust", "ordinal", "onehot", "sequence", "tfidf",
                            "hashing", "pixels", "subword", "packed"}


@pytest.mark.parametrize("groups, match", [
    # an unknown kind lists the valid ones
    ([{"kind": "zscore", "name": "x", "columns": ["a"]}], r"groups: \[0\]: unknown kind 'zscore'; choose one of .*standard"),
    # a misspelt parameter lists the accepted ones
    ([{"kind": "sequence", "name": "x", "columns": ["t"], "lenght": 3}], r"unknown parameter 'lenght'; accepted: .*length"),
    # text reads exactly one column
    ([{"kind": "tfidf", "name": "x", "columns": ["t", "u"]}], r"a text transform reads one column"),
    # two groups with one name would overwrite each other's output
    ([{"kind": "standard", "name": "x", "columns": ["a"]}, {"kind": "minmax", "name": "x", "columns": ["a"]}],
     r"group name 'x' is used twice"),
])
def test_bad_groups_are_one_line_errors(groups, match):
    from pydantic import ValidationError
    from pipeline.config import _format_error
    with pytest.raises(ValidationError) as info:
        FeaturesConfig(groups=groups)
    message = _format_error(info.value.errors()[0], "config.yaml")
    assert "\n" not in message and __import__("re").search(match, message), message


def test_missing_column_and_bad_file_are_user_errors(tmp_path):
    cfg = FeaturesConfig(groups=[{"kind": "standard", "name": "x", "columns": ["nope"]}])
    with pytest.raises(UserError, match=r"features\.groups: column 'nope' is not in the data"):
        FeatureTransform.fit(dd.from_pandas(_records(10), npartitions=1), cfg)
    (tmp_path / "features.json").write_text("{not json")
    with pytest.raises(UserError, match=r"features\.json: line 1 is not valid JSON"):
        FeatureTransform.load(tmp_path)
    with pytest.raises(UserError, match="no fitted features here"):
        FeatureTransform.load(tmp_path / "empty")
