"""An unlabelled corpus end to end on real LocalClusters: quality filters -> near-duplicates ->
BPE tokenizer -> packed sequences; counts reconcile, clusters match datasketch's own index, the
stored stream decodes back to the documents, and 1 and 2 workers store the same bytes."""
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.clean.near_duplicates import reference_clusters
from pipeline.clean.text import clean_one
from pipeline.cluster import local_client
from pipeline.config import NearDuplicatePolicy, TextPolicy
from pipeline.errors import UserError
from pipeline.packing import SPLITS
from pipeline.prepare import prepare
from pipeline.transforms import FeatureTransform
from pipeline.transforms.tokenizer import EOD
from tests.pipeline.text_corpus import BAD, corpus_job, corpus_lines


def _prepare(cfg, root):
    with local_client(cfg.cluster, log=lambda *_: None) as client:
        assert len(client.scheduler_info()["workers"]) == cfg.cluster.workers
        return prepare(cfg, root, client, log=lambda *_: None, show_progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    lines, planted = corpus_lines()
    (folder / "corpus.txt").write_text("\n".join(lines) + "\n")
    return folder, lines, planted


@pytest.fixture(scope="module")
def two_workers(corpus):
    folder, _, _ = corpus
    return _prepare(corpus_job(folder / "corpus.txt"), folder / "w2")


def test_corpus_is_filtered_deduplicated_and_counted(corpus, two_workers):
    _, lines, planted = corpus
    m = two_workers.manifest
    assert m["records_in"] == len(lines) == m["records_out"] + sum(m["quarantined"].values()) + m["duplicates_dropped"]
    assert m["quarantined"] == {"near_duplicate": len(planted), "too_few_words": 1, "symbol_ratio": 1,
                                "repeated_ngrams": 1}
    assert m["cleaning"]["near_duplicate_clusters"] == len(planted) and m["quality"]["passed"]
    q = pd.read_parquet(two_workers.ref.path / "quarantine.parquet")
    near = q[q["reason"] == "near_duplicate"]
    assert dict(zip(near["line"], near["duplicate_of"])) == {c: f"corpus.txt:{o}" for c, o in planted.items()}
    filtered = q[q["reason"] != "near_duplicate"]
    assert dict(zip(filtered["raw"], filtered["reason"])) == {t: r for r, t in BAD.items()}
    # the Dask stage finds exactly the clusters of datasketch's MinHashLSH over the same cleaned texts
    kept_quality = [(i + 1, t) for i, t in enumerate(lines) if t not in BAD.values()]
    texts = [("corpus.txt", i, clean_one(t, TextPolicy())[0]) for i, t in kept_quality]
    reference = reference_clusters(texts, NearDuplicatePolicy())
    assert {("corpus.txt", c): ("corpus.txt", o) for c, o in planted.items()} == reference


def test_packed_store_decodes_to_the_documents_with_their_boundaries(corpus, two_workers):
    m = two_workers.manifest
    ds = xr.open_zarr(two_workers.ref.data_path)
    assert ds["tokens"].dtype == np.int32 and ds["tokens"].dims == ("sample", "position")
    assert ds["tokens"].shape == (sum(m["counts"][s] for s in SPLITS), 32) and ds["segment"].shape == ds["tokens"].shape
    assert sum(m["documents"][s] for s in SPLITS) == m["records_out"]
    fitted = FeatureTransform.from_json(ds.attrs["features"])
    assert (two_workers.ref.path / "tokenizer.json").read_text() == fitted.transforms[0].state["tokenizer"]
    tokens, segment, split = ds["tokens"].values, ds["segment"].values, ds["split"].values
    lo, hi = m["ranges"]["val"]
    assert (split[lo:hi] == 1).all() and (split[:lo] == 0).all()
    stream = tokens[lo:hi].ravel()
    seg = segment[lo:hi]
    stream = stream[: int(np.count_nonzero(seg))]                  # padding only ends a split
    assert m["tokens"]["val"] == len(stream) and stream[-1] == EOD
    # documents are the texts between <eod>s; each one decodes to a document of the corpus
    docs = np.split(stream, np.flatnonzero(stream == EOD) + 1)[:-1]
    assert len(docs) == m["documents"]["val"]
    tok = fitted.transforms[0].tokenizer
    cleaned = {clean_one(t, TextPolicy())[0].replace(" ", "") for t in corpus[1]}
    assert all(tok.decode(d[:-1].tolist()).replace(" ", "") in cleaned for d in docs)
    # the segment id steps up right after each <eod> inside a sequence, and is 0 on padding only
    for row_t, row_s in zip(tokens[lo:hi], seg):
        real = row_s > 0
        steps = np.diff(row_s[real])
        assert set(steps) <= {0, 1} and list(np.flatnonzero(steps)) == list(np.flatnonzero(row_t[real][:-1] == EOD))
        assert (row_t[~real] == 0).all()


def test_one_and_two_workers_store_identical_corpus_bytes(corpus, two_workers):
    folder, _, _ = corpus
    one = _prepare(corpus_job(folder / "corpus.txt", workers=1), folder / "w1")
    assert one.ref.version == two_workers.ref.version
    files = [json.loads((r.ref.path / "checksums.json").read_text())["files"] for r in (one, two_workers)]
    assert files[0] == files[1] and "tokenizer.json" in files[0]


@pytest.mark.parametrize("sections, match", [
    # packed sequences mix documents: nothing to augment per record
    ({"augment": {"copies": 1}}, r"augment\.copies: packed text sequences are not augmented \(got 1\); "
                                 r"set augment\.copies: 0"),
    # a corpus without labels cannot store one row per record
    ({"features": {"groups": [{"kind": "subword", "name": "tokens", "columns": ["text"]}]}},
     r"features\.groups\[0\]: an unlabelled text source stores packed sequences \(got subword 'tokens'\)"),
])
def test_corpus_config_mistakes_are_one_line(corpus, sections, match):
    from pipeline import features
    with pytest.raises(UserError, match=match) as info:
        features.resolve_features(corpus_job(corpus[0] / "corpus.txt", **sections))
    assert "\n" not in str(info.value)
