"""prepare on labelled text: tokens with their vocabulary, augmented copies, a quarantine that
explains every line not stored, and counts that reconcile."""
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.clean.text import mask, normalise
from pipeline.cluster import local_client
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline.prepare import prepare
from pipeline.transforms import FeatureTransform
from tests.conftest import REPO

LABELS = ["sports", "tech", "food", "travel"]
BAD = ["no tab on this line",                         # 201 wrong_field_count
       "",                                            # 202 wrong_field_count (an empty line)
       "\tthe label is empty",                        # 203 missing_value
       "music\ta label outside the schema",           # 204 label_not_allowed
       "food\t   ",                                   # 205 empty_text
       "tech\tMail ana.1@example.org or call +44 20 7946 0958",   # 206 kept, masked
       "TECH\tupper-case label",                      # 207 label_not_allowed (labels are exact)
       "tech\t  MAIL ANA.1@EXAMPLE.ORG or call +44 20 7946 0958 "]  # 208 duplicate of 206 once cleaned


def text_job(path, **sections) -> JobConfig:
    base = {"dataset": {"name": "topics"},
            "source": {"kind": "text", "path": str(path), "labelled": True, "delimiter": "\t"},
            "schema": {"labels": LABELS}, "store": {"chunk_rows": 64},
            "features": {"groups": [{"kind": "sequence", "name": "tokens", "columns": ["text"], "length": 16}]},
            "augment": {"copies": 1, "ops": [{"op": "random_deletion", "p": 0.2}, {"op": "random_swap"}]},
            "cluster": {"workers": 2, "dashboard_address": ":0"}}
    for name, fields in sections.items():
        base[name] = {**base.get(name, {}), **fields}
    return JobConfig.model_validate(base)


@pytest.fixture(scope="module")
def client():
    with local_client(text_job("unused").cluster, log=lambda *_: None) as client:
        yield client


@pytest.fixture
def topics(tmp_path):
    """200 example lines without personal data, then the eight lines above (lines 201-208)."""
    lines = (REPO / "docs" / "examples" / "topics.tsv").read_text().splitlines()
    good = [ln for ln in lines if ln.split("\t", 1)[0] in LABELS and ln.split("\t", 1)[1].strip()
            and "@" not in ln and "+44" not in ln]
    good = list(dict.fromkeys(ln.split("\t", 1)[0] + "\t" + " ".join(ln.split("\t", 1)[1].lower().split())
                              for ln in good))[:200]      # no duplicates, even once cleaned
    path = tmp_path / "topics.tsv"
    path.write_text("\n".join(good + BAD) + "\n")
    return path


def _prepare(cfg, tmp_path, client):
    return prepare(cfg, tmp_path / "datasets", client, log=lambda *_: None, show_progress=False)


def test_prepare_stores_tokens_with_vocabulary_and_augmented_copies(topics, tmp_path, client):
    result = _prepare(text_job(topics), tmp_path, client)
    m = result.manifest
    assert (m["records_in"], m["records_out"], m["duplicates_dropped"]) == (208, 201, 1)
    assert m["records_in"] == m["records_out"] + sum(m["quarantined"].values()) + m["duplicates_dropped"]
    assert m["quarantined"] == {"wrong_field_count": 2, "missing_value": 1, "label_not_allowed": 2,
                                "empty_text": 1}
    assert m["cleaning"]["masked_email"] == 2 and m["cleaning"]["masked_phone"] == 2   # 206 and 208
    ds = xr.open_zarr(result.ref.data_path)
    n = m["n_train_stored"] + m["n_val"] + m["n_test"]
    assert m["n_train_stored"] == 2 * m["n_train"] and ds["tokens"].shape == (n, 16)
    assert ds["tokens"].dims == ("sample", "position") and ds["tokens"].dtype == np.int32
    vocab = ds["tokens"].attrs["vocabulary"]
    assert vocab[:2] == ["<pad>", "<unk>"] and {"email", "phone"} <= set(vocab)  # masks are words
    assert not {"ana", "example", "7946", "0958"} & set(vocab)                   # the personal data is not
    assert int(ds["augmented"].sum()) == m["n_train"] and not ds["augmented"][m["n_train_stored"]:].any()
    assert set(np.unique(ds["label"].values)) == {0, 1, 2, 3}
    tokens = ds["tokens"].values
    assert tokens.max() < len(vocab) and (tokens[:, 0] > 0).all()              # no empty rows
    q = pd.read_parquet(result.ref.path / "quarantine.parquet").set_index("line")
    assert q["reason"].to_dict() == {201: "wrong_field_count", 202: "wrong_field_count", 203: "missing_value",
                                     204: "label_not_allowed", 205: "empty_text", 207: "label_not_allowed"}
    assert q.loc[204, "raw"] == BAD[3]
    report = json.loads((result.ref.path / "report.json").read_text())
    assert set(report["columns"]) == {"n_tokens", "n_chars"} and report["columns"]["n_tokens"]["min"] >= 1
    assert sum(report["label_distribution"].values()) == 201


def test_served_transform_gives_the_stored_tokens(topics, tmp_path, client):
    result = _prepare(text_job(topics, augment={"copies": 0}), tmp_path, client)
    ds = xr.open_zarr(result.ref.data_path)
    fitted = FeatureTransform.from_json(ds.attrs["features"])
    lines = topics.read_text().splitlines()
    test = slice(*result.manifest["ranges"]["test"])
    policy = text_job(topics).clean.text
    texts = [mask(normalise(lines[i - 1].split("\t", 1)[1], policy), policy.mask)[0]
             for i in ds["source_line"].values[test]]
    served = fitted.transform(pd.DataFrame({"text": texts}))["tokens"]
    assert served.tobytes() == ds["tokens"].values[test].tobytes()


def test_default_features_for_text_are_a_sequence(topics, tmp_path, client):
    result = _prepare(text_job(topics, features={"groups": []}, augment={"copies": 0}), tmp_path, client)
    ds = xr.open_zarr(result.ref.data_path)
    assert ds["tokens"].shape[1] == 48 and ds["tokens"].attrs["vocabulary"][1] == "<unk>"


@pytest.mark.parametrize("sections, match", [
    # an unlabelled text source is a corpus of packed sequences, not one row per record
    ({"source": {"labelled": False}},
     r"features\.groups\[0\]: an unlabelled text source stores packed sequences \(got sequence 'tokens'\).*packed"),
    # a features section for images does not fit a text source
    ({"features": {"groups": [{"kind": "pixels", "name": "image", "columns": ["p*"]}]}},
     r"features\.groups\[0\]: a labelled text dataset stores one row of token ids per record \(got pixels 'image'\)"),
    # image ops on a text dataset
    ({"augment": {"ops": [{"op": "rotate"}]}}, r"augment\.ops: 'rotate' works on image data .*tokens"),
])
def test_text_config_mistakes_are_one_line(topics, tmp_path, client, sections, match):
    with pytest.raises(UserError, match=match) as info:
        _prepare(text_job(topics, **sections), tmp_path, client)
    assert "\n" not in str(info.value)


def test_a_file_without_delimiters_says_which_delimiter(tmp_path, client):
    path = tmp_path / "plain.txt"
    path.write_text("just text\nmore text\n")
    with pytest.raises(UserError, match=r"plain\.txt: all 2 records were quarantined \(e\.g\. wrong_field_count: "
                                        r"line 1 has no '\\t' between label and text"):
        _prepare(text_job(path), tmp_path, client)
