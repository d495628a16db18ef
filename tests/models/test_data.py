"""The Zarr loader on a tiny real store: balanced, reshuffled per epoch, exactly resumable at any world size."""
import numpy as np
import pytest
import xarray as xr
import zarr

from models import data
from tests.pipeline.store_data import publish_tiny, store_config


@pytest.fixture
def store(tmp_path):
    """203 samples of 4x4x1 whose pixels all equal the sample's index; chunks of 16 rows."""
    n = 203
    group = zarr.open_group(tmp_path / "data.zarr", mode="w", zarr_format=3)
    image = group.create_array("image", shape=(n, 4, 4, 1), chunks=(16, 4, 4, 1), dtype="float32")
    image[:] = np.broadcast_to(np.arange(n, dtype="float32")[:, None, None, None], (n, 4, 4, 1))
    label = group.create_array("label", shape=(n,), chunks=(16,), dtype="int16")
    label[:] = np.arange(n) % 10
    return str(tmp_path / "data.zarr")


def _ids(loader, epoch, consumed=0):
    return [x[:, 0, 0, 0].astype(int) for x, _ in loader.batches(epoch, consumed)]


def _loader(store, rank=0, world=2, **kw):
    """197 samples, 24 batches of 8 in 4 logical shards of 6 batches, windows of 5 batches."""
    spec = {"store": store, "split_range": (3, 200), "batch_size": 8, "rank": rank, "world": world,
            "shuffle_buffer": 40, "seed": 1, "read_threads": 2, "logical_shards": 4, **kw}
    return data.ZarrLoader(data.LoaderSpec(**spec))


def _streamed(ds):
    return [x.numpy()[:, 0, 0, 0].astype(int) for x, _ in ds]


def test_ranks_get_equal_steps_and_disjoint_samples(store):
    ids = [np.concatenate(_ids(_loader(store, rank=r), epoch=0)) for r in range(2)]
    loader = _loader(store)
    assert loader.steps_per_epoch == (197 // 8) // 2 == 12
    assert [len(i) for i in ids] == [12 * 8, 12 * 8]
    assert not set(ids[0]) & set(ids[1])
    assert all(3 <= i < 200 for i in np.concatenate(ids))


def test_labels_travel_with_their_images(store):
    for x, y in _loader(store).batches(0):
        np.testing.assert_array_equal(y, x[:, 0, 0, 0].astype(int) % 10)
        assert y.dtype == np.int32


def test_order_is_reshuffled_every_epoch_but_reproducible(store):
    loader = _loader(store)
    first, again, second = (np.concatenate(_ids(loader, e)) for e in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("start_step", [1, 5, 11])   # inside the first window, later, the last step
def test_starting_mid_epoch_gives_the_rest_of_the_same_epoch(store, start_step):
    loader = _loader(store)
    full, resumed = _ids(loader, 2), _ids(loader, 2, consumed=2 * start_step)
    assert len(resumed) == len(full) - start_step
    for a, b in zip(full[start_step:], resumed):
        np.testing.assert_array_equal(a, b)


def test_tf_dataset_yields_exactly_the_steps_left(store):
    loader = _loader(store)
    batches = list(loader.epoch(0, consumed=8))
    assert len(batches) == loader.steps_per_epoch - 4
    assert tuple(batches[0][0].shape) == (8, 4, 4, 1)


@pytest.mark.parametrize("world, consumed", [
    (2, 0),    # divides the 4 shards: each rank reads 2 shards, taken in turn
    (2, 6),    # resumed mid-epoch
    (3, 5),    # does not divide the shards: every rank takes some batches of every shard
    (1, 3),    # one rank after a restart at a smaller world
])
def test_the_parallel_stream_gives_the_batches_in_step_order(store, world, consumed):
    for rank in range(world):
        loader = _loader(store, rank=rank, world=world, read_threads=3)
        streamed, expected = _streamed(loader.epoch(1, consumed)), _ids(loader, 1, consumed)
        assert len(streamed) == len(expected) == loader.steps_left(consumed)
        for a, b in zip(streamed, expected):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("before, after", [(2, 1), (4, 2), (3, 2), (1, 2)])
def test_a_restart_at_another_world_size_reads_each_remaining_sample_once(store, before, after):
    """Positions written after 2 steps at ``before`` ranks, resumed at ``after``: the samples of the
    epoch read before and after are all distinct, and fewer than ``after`` batches sit out."""
    read = [i for r in range(before) for batch in _ids(_loader(store, rank=r, world=before), 0)[:2] for i in batch]
    consumed = 2 * before
    read += [i for r in range(after) for batch in _ids(_loader(store, rank=r, world=after), 0, consumed) for i in batch]
    assert len(read) == len(set(read))
    assert 24 * 8 - len(read) < after * 8


def test_eval_ranges_cover_the_split_once():
    parts = [data.eval_range((10, 111), r, 3) for r in range(3)]
    assert parts == [(10, 43), (43, 76), (76, 111)]


def test_a_stream_over_epochs_is_the_epochs_one_after_another(store):
    loader = _loader(store)
    streamed = _streamed(loader.stream(1, consumed=6, end_epoch=3))
    expected = _ids(loader, 1, 6) + _ids(loader, 2)
    assert len(streamed) == len(expected) == 2 * loader.steps_per_epoch - 3
    for a, b in zip(streamed, expected):
        np.testing.assert_array_equal(a, b)


def test_a_stream_runs_no_autotuning_thread(store):
    """A run's stream lives for the whole run; with tf.data autotuning on, ranks were seen to sit
    25-35 s at exit in the iterator's destructor, waiting out the tuning thread's sleep (4 of 6 main
    jobs, 0 of 3 without it). The stream's buffers are sized by hand instead."""
    assert _loader(store).stream(0).options().autotune.enabled is False


def test_uint8_packed_images_are_decoded_to_what_xarray_gives(tmp_path):
    store = str(publish_tiny(tmp_path, cfg=store_config(image_dtype="uint8")).ref.data_path)
    decoded = xr.open_zarr(store)["image"].values      # float64: Zarr's JSON attributes carry no float32
    loader = data.ZarrLoader(data.LoaderSpec(store=store, split_range=(0, 300), batch_size=30, world=1,
                                             shuffle_buffer=30, read_threads=2, logical_shards=8, seed=0))
    assert loader.element_spec[0].dtype == "uint8"            # read as stored: a quarter of the bytes
    (stored, y), = loader.stream(0).take(1)
    assert stored.dtype == "uint8"                            # and streamed as stored, decoded in the step
    x = loader.decode(stored)
    assert x.dtype == "float32" and 0 <= float(np.min(x)) and float(np.max(x)) <= 1
    rows = [int(np.abs(decoded - xi).max(axis=(1, 2, 3)).argmin()) for xi in x.numpy()]   # the store rows batched
    assert len(set(rows)) == 30
    np.testing.assert_array_equal(x.numpy(), decoded[rows].astype("float32"))   # exactly, k / 255
    (e, _), = data.eval_dataset(store, (0, 300), rank=0, world=1, batch_size=300)
    np.testing.assert_array_equal(e.numpy(), decoded.astype("float32"))


def test_the_tensorstore_reader_gives_what_zarr_python_gives(tmp_path):
    store = str(publish_tiny(tmp_path, cfg=store_config(image_dtype="uint8")).ref.data_path)
    stored = zarr.open_group(store, mode="r")["image"]
    reader = data.open_reader(store, "image")
    assert reader.dtype.numpy_dtype == stored.dtype and tuple(reader.shape) == stored.shape
    np.testing.assert_array_equal(reader[5:123].read().result(), stored[5:123])   # spans chunks


@pytest.fixture
def packed_store(tmp_path):
    """203 packed sequences of 6 tokens: ``tokens[i] = 1000 i + position``, ``segment[i] = i % 5``
    (per position, int32, chunks of 16 rows); no label, as a pretraining corpus stores it."""
    n, length = 203, 6
    group = zarr.open_group(tmp_path / "data.zarr", mode="w", zarr_format=3)
    tokens = group.create_array("tokens", shape=(n, length), chunks=(16, length), dtype="int32")
    tokens[:] = 1000 * np.arange(n)[:, None] + np.arange(length)[None]
    segment = group.create_array("segment", shape=(n, length), chunks=(16, length), dtype="int32")
    segment[:] = np.broadcast_to((np.arange(n) % 5)[:, None], (n, length))
    return str(tmp_path / "data.zarr")


@pytest.mark.parametrize("world, consumed", [(2, 0), (3, 5)])   # two ranks; three, resumed mid-epoch
def test_a_per_position_y_var_travels_with_its_sequences(packed_store, world, consumed):
    for rank in range(world):
        loader = _loader(packed_store, rank=rank, world=world, x_var="tokens", y_var="segment")
        assert loader.element_spec[1].shape == (8, 6) and loader.element_spec[1].dtype == "int32"
        streamed = list(loader.epoch(1, consumed))
        assert len(streamed) == loader.steps_left(consumed) > 0
        for (x, y), (bx, by) in zip(streamed, loader.batches(1, consumed)):
            rows = x.numpy()[:, 0] // 1000
            np.testing.assert_array_equal(y.numpy(), np.broadcast_to((rows % 5)[:, None], (8, 6)))
            np.testing.assert_array_equal(x.numpy(), bx)        # the stream is the one-thread batches
            np.testing.assert_array_equal(y.numpy(), by)
    (t, s), = data.eval_dataset(packed_store, (3, 200), rank=0, world=1, batch_size=197, x_var="tokens",
                                y_var="segment")
    np.testing.assert_array_equal(s.numpy()[:, 0], (t.numpy()[:, 0] // 1000) % 5)
