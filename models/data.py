"""Zarr -> tf.data: balanced, reshuffled every epoch, read in parallel, resumable mid-epoch.

Each rank reads the pieces :func:`models.sharding.epoch_pieces` gives it, as one sequence of
``n // world`` samples. That sequence is cut into windows of a whole number of batches, at least
``shuffle_buffer`` samples each. A window is read, shuffled in memory and cut into batches by one
call; tf.data runs ``read_threads`` such calls at once (the Zarr codecs and numpy work
outside the GIL) and prefetches ahead, so reading and decompressing overlap training. The order of an
epoch depends only on (seed, epoch, rank), so a run's position is just (epoch, step):
:meth:`ZarrLoader.epoch` can start at any step and gives exactly the batches the interrupted epoch
had left.

The input variable is read with TensorStore, whose C++ Zarr v3 driver reads and decodes a window's
chunks concurrently without the GIL: ~1 ms a 1 MB chunk here where zarr-python spends ~3 ms, most
of it Python on its one event-loop thread (bench/RESULTS-6.md). Attributes and labels come through
zarr-python.

Batches travel as stored (e.g. uint8 pixels, a quarter of float32's bytes, in every buffer and on
the way to a GPU) and are decoded where they are used: :meth:`ZarrLoader.decode` applies the CF
``scale_factor``/``add_offset`` the store wrote, inside the training step's graph, and gives the same
float32 values ``xr.open_zarr`` gives. Decoding in the reading threads instead cost the loader ~15%
of its samples/s (bench/RESULTS-6.md); in the step it is a cast and a multiply-add on one batch.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorstore as ts
import zarr

from models import sharding


@dataclass(frozen=True, kw_only=True)
class LoaderSpec:
    """What one rank reads from one split of a store."""

    store: str                       # path of data.zarr
    split_range: tuple[int, int]     # [start, stop) of the split
    batch_size: int
    rank: int = 0
    world: int = 1
    shuffle_buffer: int = 4096       # samples shuffled together in memory
    seed: int = 0
    read_threads: int = 4            # windows read and decoded in parallel
    x_var: str = "image"             # the input variable (e.g. "tokens" for a text dataset)


def open_reader(store: str, var: str) -> ts.TensorStore:
    """``var`` of the Zarr v3 group at ``store`` opened read-only with TensorStore, without a chunk
    cache (every window reads what it needs from disk; nothing grows with the dataset)."""
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{store.rstrip('/')}/{var}"}}
    return ts.open(spec, read=True, context=ts.Context({"cache_pool": {"total_bytes_limit": 0}})).result()


def cf_decoder(array: zarr.Array):
    """tf ``x -> x * scale_factor + add_offset`` in float32 when ``array`` is CF-packed, else the
    identity (e.g. token ids stay integers)."""
    scale, offset = array.attrs.get("scale_factor"), array.attrs.get("add_offset")
    if scale is None and offset is None:
        return tf.identity
    scale, offset = float(1.0 if scale is None else scale), float(offset or 0.0)

    def decode(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(x, tf.float32) * scale + offset

    return decode


class ZarrLoader:
    """Batches of ``(x, label)`` for one rank; every rank gets the same number per epoch."""

    def __init__(self, spec: LoaderSpec):
        self.spec = spec
        group = zarr.open_group(spec.store, mode="r")
        self._x = group[spec.x_var]
        # The split's labels (2 bytes a sample) are read once: a Zarr read costs ~1 ms whatever its size.
        lo, hi = spec.split_range
        self._labels = group["label"][lo:hi].astype(np.int32)
        self._reader = open_reader(spec.store, spec.x_var)
        self.decode = cf_decoder(self._x)   # stored batch -> model input, inside the step's graph
        self.chunk_rows = int(self._x.chunks[0])
        n = spec.split_range[1] - spec.split_range[0]
        self.steps_per_epoch = sharding.steps_per_epoch(n, spec.world, spec.batch_size)
        self.window_batches = max(1, -(-spec.shuffle_buffer // spec.batch_size))

    @property
    def element_spec(self) -> tuple[tf.TensorSpec, tf.TensorSpec]:
        """Batches as stored, from :meth:`window`, :meth:`batches` and :meth:`stream` alike."""
        shape = (self.spec.batch_size, *self._x.shape[1:])
        return (tf.TensorSpec(shape, tf.as_dtype(self._x.dtype)), tf.TensorSpec((self.spec.batch_size,), tf.int32))

    def n_windows(self) -> int:
        return -(-self.steps_per_epoch // self.window_batches)

    def window(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``index`` of ``epoch``, shuffled, as ``(n_batches, batch_size, ...)`` arrays."""
        spec, b = self.spec, self.spec.batch_size
        pieces = sharding.epoch_pieces(spec.split_range, self.chunk_rows, spec.rank, spec.world, spec.seed, epoch)
        first = index * self.window_batches
        k = min(self.window_batches, self.steps_per_epoch - first)
        parts = sharding.slice_pieces(pieces, first * b, (first + k) * b)
        reads = [self._reader[p.start:p.stop].read() for p in parts]     # all issued before any is awaited
        xs = np.concatenate([r.result() for r in reads])
        lo = spec.split_range[0]
        labels = np.concatenate([self._labels[p.start - lo:p.stop - lo] for p in parts])
        order = np.random.default_rng([spec.seed, epoch, spec.rank, index]).permutation(len(labels))
        return np.take(xs, order, axis=0).reshape(k, b, *xs.shape[1:]), labels[order].reshape(k, b)

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The epoch's batches from ``start_step`` on, as stored numpy arrays (one thread)."""
        first, skip = divmod(start_step, self.window_batches)
        for index in range(first, self.n_windows()):
            xs, labels = self.window(epoch, index)
            yield from zip(xs[skip:], labels[skip:])
            skip = 0

    def stream(self, start_epoch: int, start_step: int = 0, end_epoch: int | None = None) -> tf.data.Dataset:
        """Batches from step ``start_step`` of ``start_epoch`` to the end of epoch ``end_epoch - 1``
        as one dataset: built once, windows read in parallel and in order, prefetched across
        epoch ends (the next epoch's first window is read while the last one is evaluated)."""
        end_epoch = start_epoch + 1 if end_epoch is None else end_epoch
        first, skip = divmod(start_step, self.window_batches)
        pairs = [(start_epoch, i) for i in range(first, self.n_windows())]
        pairs += [(e, i) for e in range(start_epoch + 1, end_epoch) for i in range(self.n_windows())]
        x_spec, y_spec = self.element_spec

        def read_window(pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return self.window(int(pair[0]), int(pair[1]))

        def read(pair):
            xs, labels = tf.numpy_function(read_window, [pair], (x_spec.dtype, y_spec.dtype), stateful=False)
            return tf.ensure_shape(xs, (None, *x_spec.shape)), tf.ensure_shape(labels, (None, *y_spec.shape))

        windows = tf.data.Dataset.from_tensor_slices(np.array(pairs, np.int64).reshape(-1, 2)).map(
            read, num_parallel_calls=max(self.spec.read_threads, 1), deterministic=True)
        # A fixed prefetch of one window's batches, and no autotuning: TF 2.18's tuning thread sleeps
        # up to 60 s between rounds and an iterator's destructor can wait out that sleep (25-35 s at
        # the end of a 2-minute run, measured); the reads' parallelism is fixed above anyway.
        options = tf.data.Options()
        options.autotune.enabled = False
        return windows.unbatch().skip(skip).prefetch(self.window_batches).with_options(options)

    def epoch(self, epoch: int, start_step: int = 0) -> tf.data.Dataset:
        """The ``steps_per_epoch - start_step`` batches left in ``epoch``."""
        return self.stream(epoch, start_step)

    def close(self) -> None:
        """Nothing to release: kept so callers need not know how reads are scheduled."""


def eval_range(split_range: tuple[int, int], rank: int, world: int) -> tuple[int, int]:
    """The rank's contiguous part of an evaluation split; the last rank also takes the remainder."""
    start, stop = split_range
    share = (stop - start) // world
    return start + rank * share, stop if rank == world - 1 else start + (rank + 1) * share


def eval_dataset(store: str, split_range: tuple[int, int], rank: int, world: int,
                 batch_size: int = 256, x_var: str = "image") -> tf.data.Dataset:
    """All of the rank's evaluation rows, in order and decoded (uneven across ranks is fine: no
    collectives). The split stays in memory as stored (uint8: a quarter of float32), decoded a batch
    at a time."""
    start, stop = eval_range(split_range, rank, world)
    group = zarr.open_group(store, mode="r")
    decode = cf_decoder(group[x_var])
    xs, labels = group[x_var][start:stop], group["label"][start:stop].astype(np.int32)
    return (tf.data.Dataset.from_tensor_slices((xs, labels)).batch(batch_size)
            .map(lambda x, y: (decode(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
