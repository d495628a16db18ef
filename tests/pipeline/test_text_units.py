"""The text path's parts without a cluster: quality reasons, shingles and bands, union-find,
the tokenizer's state and serving rows, packing arithmetic, and jsonl/parquet text fields."""
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import sources
from pipeline.clean.near_duplicates import bands, clusters, estimated_jaccard, shingles, signature
from pipeline.clean.quality import failure
from pipeline.config import NearDuplicatePolicy, QualityPolicy, SchemaConfig, SourceConfig, parse_config
from pipeline.errors import UserError
from pipeline.packing import cut, stream
from pipeline.transforms import FeatureTransform
from pipeline.transforms.tokenizer import EOD, SPECIAL, Packed, train_tokenizer
from pipeline.validate import validate_unlabelled
from tests.pipeline.helpers import collect
from tests.pipeline.text_corpus import documents

GOPHER = QualityPolicy(min_words=5, min_mean_word_length=3, max_non_letter_ratio=0.2, language="en")


@pytest.mark.parametrize("text, reason", [
    ("the cat and the dog", None),                                          # ordinary: passes every check
    ("too short", "too_few_words"),                                         # 2 words < 5
    ("a b c d e f g", "mean_word_length"),                                  # mean length 1 < 3
    ("the #one and #two to #three with #four", "symbol_ratio"),             # 4 '#' per 8 words > 0.1
    ("the 123 456 789 and 000 with 111", "non_letter_ratio"),               # 5 of 8 words without a letter
    ("the cat and dog\nthe cat and dog\nthe cat and dog\nto be with that", "repeated_lines"),   # 2 of 4 repeat
    ("the spam and spam and spam and spam and spam", "repeated_ngrams"),    # 'spam and' covers most characters
    ("lorem ipsum dolor sit amet consectetur adipiscing elit sed", "language"),   # no English stop word
])
def test_quality_reasons(text, reason):
    assert failure(text, GOPHER) == reason


def test_duplicate_ngrams_counts_words_inside_repeated_ngrams():
    words = "one two three four five six seven eight nine ten".split()
    text = " ".join(words + words[:5] + ["eleven"])             # the 5-gram one..five occurs twice
    policy = QualityPolicy(max_top_ngram_fraction={}, max_duplicate_ngram_fraction={5: 0.15})
    assert failure(text, policy) == "duplicate_ngrams"
    assert failure(text, QualityPolicy(max_top_ngram_fraction={}, max_duplicate_ngram_fraction={})) is None


def test_shingles_bands_and_signatures():
    assert shingles("abcd", 3) == {b"abc", b"bcd"} and shingles("ab", 3) == {b"ab"} and shingles("", 3) == set()
    assert bands(0.8, 128) == (9, 13)
    policy = NearDuplicatePolicy()
    doc = documents(1)[0]
    a, b = signature(doc, policy), signature(doc + "s", policy)
    assert a.dtype == np.uint64 and a.shape == (128,) and (a == signature(doc, policy)).all()
    assert estimated_jaccard(a, b) > 0.8 > estimated_jaccard(a, signature(documents(2)[1], policy))


def test_union_find_keeps_the_smallest_id_of_each_cluster():
    edges = [(("b", 9), ("a", 5)), (("c", 1), ("b", 9)), (("x", 2), ("x", 1))]
    assert clusters(edges, []) == {("a", 5): ("a", 5), ("b", 9): ("a", 5), ("c", 1): ("a", 5),
                                   ("x", 1): ("x", 1), ("x", 2): ("x", 1)}


def _fitted(texts, **params) -> Packed:
    spec = Packed(name="tokens", columns=["text"], vocab_size=120, length=8, **params)
    return spec.with_tokenizer(train_tokenizer(texts, spec))


def test_tokenizer_state_is_json_with_fixed_special_ids_and_serves_the_same_rows():
    texts = documents(40)
    t = _fitted(texts)
    assert train_tokenizer(texts, t) == t.state["tokenizer"]                 # same data, same tokenizer
    vocab = json.loads(t.state["tokenizer"])["model"]["vocab"]
    assert [vocab[s] for s in SPECIAL] == [0, 1, 2, 3]
    again = FeatureTransform.from_json(FeatureTransform((t,)).to_json())   # what serving loads
    frame = pd.DataFrame({"text": texts[:3] + [None]})
    rows = again.transform(frame)["tokens"]
    assert rows.dtype == np.int32 and rows.shape == (4, 8) and (rows[3] == 0).all()
    assert rows[0].tolist() == t.encode(texts[:1])[0][:8]


def test_unigram_is_refused_with_the_reason():
    with pytest.raises(UserError, match=r"config: features\.groups: \[0\] \(packed\): model must be bpe \(got "
                                        r"'unigram'\): unigram training is not repeatable") as info:
        parse_config({"features": {"groups": [{"kind": "packed", "name": "tokens", "columns": ["text"],
                                               "model": "unigram"}]}})
    assert "\n" not in str(info.value)


def test_a_tokenizer_file_that_is_not_json_is_one_line(tmp_path):
    (tmp_path / "tok.json").write_text("{not json")
    spec = Packed(name="tokens", columns=["text"], tokenizer_file=str(tmp_path / "tok.json"))
    with pytest.raises(UserError, match=r"tok\.json: line 1 is not valid JSON"):
        spec.fit_state(None)


def test_packing_cuts_one_stream_with_document_segments():
    ids, docs = stream([[5, 6, 7], [8], [9, 10]], 40)
    assert ids.tolist() == [5, 6, 7, EOD, 8, EOD, 9, 10, EOD] and docs.tolist() == [40] * 4 + [41] * 2 + [42] * 3
    tokens, segment = cut(ids, docs, 4)
    assert tokens.tolist() == [[5, 6, 7, EOD], [8, EOD, 9, 10], [EOD, 0, 0, 0]]
    assert segment.tolist() == [[1, 1, 1, 1], [1, 1, 2, 2], [1, 0, 0, 0]]


def test_jsonl_and_parquet_text_fields_are_text_records(tmp_path):
    objs = [{"id": 1, "body": "first text"}, {"id": 2, "body": None}, {"id": 3, "body": 7}, {"id": 4, "body": "last"}]
    (tmp_path / "d.jsonl").write_text("\n".join([json.dumps(o) for o in objs] + ["not json"]) + "\n")
    got = collect(sources.read(SourceConfig(kind="jsonl", path=str(tmp_path / "d.jsonl"), text_field="body"),
                               SchemaConfig()))
    assert got["text"].tolist()[:1] == ["first text"] and got["text"][3] == "last"
    assert got["reason"].tolist()[1:3] == ["wrong_field_count", "malformed"] and got["reason"][4] == "malformed"
    pq.write_table(pa.table({"body": ["a b", "c d", "e f"], "topic": ["x", "y", "x"]}), tmp_path / "d.parquet",
                   row_group_size=2)
    cfg = SourceConfig(kind="parquet", path=str(tmp_path / "d.parquet"), text_field="body", labelled=True,
                       label_field="topic")
    got = collect(sources.read(cfg, SchemaConfig(labels=["x", "y"])))
    assert got["text"].tolist() == ["a b", "c d", "e f"] and got["label"].tolist() == ["x", "y", "x"]
    assert got["line"].tolist() == [1, 2, 3]
    checked = validate_unlabelled(sources.read(SourceConfig(kind="jsonl", path=str(tmp_path / "d.jsonl"),
                                                            text_field="body"), SchemaConfig()).records, SchemaConfig())
    assert len(checked.rows.compute()) == 2 and (checked.rows.compute()["label"] == -1).all()


@pytest.mark.parametrize("build, match", [
    # text_field belongs to the table sources
    (lambda p: parse_config({"source": {"kind": "csv", "path": p, "text_field": "body"}}),
     r"config: source: text_field is read from jsonl or parquet sources, not csv"),
    # a labelled parquet text source needs its label field
    (lambda p: sources.read(SourceConfig(kind="parquet", path=p, text_field="body", labelled=True), SchemaConfig()),
     r"d\.parquet: no field 'label' \(found \['body'\]\); fix source\.label_field"),
    # the text field must exist
    (lambda p: sources.read(SourceConfig(kind="parquet", path=p, text_field="text"), SchemaConfig()),
     r"d\.parquet: no field 'text' \(found \['body'\]\); fix source\.text_field"),
])
def test_text_field_mistakes_are_one_line(tmp_path, build, match):
    pq.write_table(pa.table({"body": ["a b"]}), tmp_path / "d.parquet")
    with pytest.raises(UserError, match=match) as info:
        build(str(tmp_path / "d.parquet"))
    assert "\n" not in str(info.value)
