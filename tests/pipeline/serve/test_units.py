"""The serving parts without a server: input checks (fed garbage), the batch buckets, the LRU."""
import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.serve.batching import Batcher, Overloaded, bucket_sizes, pad, padded_size
from pipeline.serve.cache import AnswerCache, instance_key
from pipeline.serve.records import BadInput, TableRecords, TextRecords, v2_instances

TABLE = TableRecords(n_values=4, value_min=0, value_max=255)


@pytest.mark.parametrize("instances, message", [
    ([[1, 2, 3]], r"instances\[0\]: expected 4 numeric fields .* got 3"),          # too few fields
    ([[1, 2, 3, 4], [1, 2, 3, 4, 5]], r"instances\[1\]: expected 4 .* got 5"),    # the label left in
    ([[1, "2", 3, 4]], r"instances\[0\]: field 1 must be a number \(got str"),     # a string for a number
    ([[1, True, 3, 4]], r"field 1 must be a number \(got bool"),                  # a bool is not a number
    ([[1, 2, 3, 300]], r"field 3 is 300, outside the schema's range \[value_min 0, value_max 255\]"),
    ([[1, 2, 3, -1]], r"field 3 is -1, outside"),                                 # below value_min
    ([[1, 2, 3, float("nan")]], r"field 3 is nan, outside"),                      # NaN from Python
    ([[1, 2, 3, 10 ** 400]], r"field 3 is 1000.*, outside"),                      # an int past float64
    (["1,2,x,4"], r"a CSV record must hold numbers only"),                         # a bad CSV line
    ([{"a": 1}], r"expected a list of numbers or a CSV line \(got dict\)"),       # an object
    ([], r"instances: no instances"),                                             # empty
    ("1,2,3,4", r"instances: expected a list of instances \(got str\)"),          # not a list
])
def test_table_rules_name_the_instance(instances, message):
    with pytest.raises(BadInput, match=message):
        TABLE.rows(instances)


def test_table_rows_accept_lists_and_csv_lines():
    assert TABLE.rows([[0, 1, 2.5, 255], "4,5,6,7"]).tolist() == [[0, 1, 2.5, 255], [4, 5, 6, 7]]


@pytest.mark.parametrize("instances, message", [
    ([3], r"instances\[0\]: expected a string \(got int\)"),
    (["ok", "   "], r"instances\[1\]: the text is empty"),
])
def test_text_rules(instances, message):
    with pytest.raises(BadInput, match=message):
        TextRecords().rows(instances)


@pytest.mark.parametrize("inputs, message", [
    (None, r"inputs: expected a list of one tensor"),
    ([{"shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], r"shape \[2, 4\] holds 8 values but data has 4"),
    ([{"shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], r"expected \[n, 4\] \(got \[1, 3\]\)"),
    ([{"shape": [1, 4], "datatype": "BYTES", "data": [1, 2, 3, 4]}], r"datatype: expected one of FP32"),
    ([{"shape": "x", "datatype": "FP32", "data": []}], r"shape: expected a list of non-negative ints"),
])
def test_v2_tensor_rules(inputs, message):
    with pytest.raises(BadInput, match=message):
        v2_instances(inputs, TABLE)


def test_v2_nested_and_flat_data_give_the_same_rows():
    flat = v2_instances([{"shape": [2, 4], "datatype": "INT32", "data": list(range(8))}], TABLE)
    nested = v2_instances([{"shape": [2, 4], "datatype": "INT32", "data": [[0, 1, 2, 3], [4, 5, 6, 7]]}], TABLE)
    assert flat == nested == [[0, 1, 2, 3], [4, 5, 6, 7]]


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
                    max_leaves=20))
def test_garbage_is_bad_input_or_valid_rows(garbage):
    """Whatever JSON-ish value arrives, the checks answer rows or BadInput, never another error."""
    for check in (lambda: TABLE.rows(garbage), lambda: TextRecords().rows(garbage),
                  lambda: v2_instances(garbage, TABLE), lambda: v2_instances([{"shape": [1, 4], "datatype": "FP32",
                                                                               "data": garbage}], TABLE)):
        try:
            check()
        except BadInput:
            pass


@pytest.mark.parametrize("max_batch, buckets", [
    (1, (1,)),                           # no batching
    (32, (1, 2, 4, 8, 16, 32)),          # a power of two
    (48, (1, 2, 4, 8, 16, 32, 48)),      # the maximum itself is the last bucket
])
def test_bucket_sizes(max_batch, buckets):
    assert bucket_sizes(max_batch) == buckets
    assert all(padded_size(n, buckets) >= n for n in range(1, max_batch + 1))


def test_pad_repeats_the_first_row():
    assert pad(np.array([[1.0], [2.0]]), 4).tolist() == [[1], [2], [1], [1]]
    assert pad(["a"], 2) == ["a", "a"]


def test_batcher_batches_pads_and_refuses_past_the_queue():
    seen = []

    def predict(rows):
        seen.append(len(rows))
        return np.asarray(rows, dtype=np.float32)

    async def scenario():
        batcher = Batcher(predict, max_batch_size=8, max_wait_ms=50, max_queue=4, on_batch=lambda n: None)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(np.full((1, 1), i, np.float32)) for i in range(3)))
        overflow = [batcher.submit(np.zeros((1, 1), np.float32)) for _ in range(6)]
        outcomes = await asyncio.gather(*overflow, return_exceptions=True)
        await batcher.stop()
        return results, outcomes

    results, outcomes = asyncio.run(scenario())
    assert [r.tolist() for r in results] == [[[0]], [[1]], [[2]]]
    assert seen[0] == 4                                   # three rows in one batch, padded to 4
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 2


def test_cache_is_an_lru_keyed_by_bundle_and_bytes():
    cache = AnswerCache(2)
    a, b = instance_key(TABLE.row([1, 2, 3, 4], "x")), instance_key(TABLE.row([1, 2, 3, 4.5], "x"))
    cache.put(("h1", a), "A")
    assert cache.get(("h2", a)) is None                   # another bundle: a miss
    assert cache.get(("h1", a)) == "A"
    cache.put(("h1", b), "B")
    cache.put(("h1", "c"), "C")                           # evicts the least recently used (a)
    assert cache.get(("h1", a)) is None and cache.get(("h1", b)) == "B"
    assert cache.stats() == {"hits": 2, "misses": 2, "size": 2, "capacity": 2, "hit_ratio": 0.5}
    assert a == instance_key(TABLE.row("1,2,3,4", "x"))               # a list and a CSV line: one entry


def test_whole_body_entries_share_the_lru_and_count_instances_not_lookups():
    from pipeline.serve.cache import body_key
    cache = AnswerCache(2)
    key = ("h1", "v1", body_key(b'{"instances": [[1, 2, 3, 4]]}'))
    assert cache.peek(key) is None                        # a whole-body miss is not counted...
    cache.put(key, (3, b'{"predictions": [1, 1, 2]}'))
    assert cache.peek(key) == (3, b'{"predictions": [1, 1, 2]}')
    cache.count_hits(3)                                   # ...a hit counts its three instances
    assert cache.stats()["hits"] == 3 and cache.stats()["misses"] == 0
    assert cache.peek(("h2", "v1", key[2])) is None       # another bundle's hash: not its answer
    assert body_key(b"[1]") != body_key(b"[1] ")          # the key is the bytes as sent
