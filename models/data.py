"""Zarr -> tf.data: balanced, reshuffled every epoch, read in parallel, resumable at any world size.

Each rank reads the global batches :mod:`models.sharding` gives it: the epoch's order depends only
on (seed, epoch, logical shards), never on the world size, so a position is (epoch, batches
consumed) and :meth:`ZarrLoader.stream` can start anywhere, at any world size, with exactly the
batches the interrupted epoch had left. Each logical shard is read in windows of a whole number of
batches, at least ``shuffle_buffer`` samples each, shuffled in memory; a rank reads in rounds (window
``m`` of each shard it needs, read at once and cut into its batches in step order by one call), and
tf.data runs ``read_threads`` such calls at once (the Zarr codecs and numpy work outside the GIL)
and prefetches ahead, so reading and decompressing overlap training.

The input variable is read with TensorStore, whose C++ Zarr v3 driver reads and decodes a window's
chunks concurrently without the GIL: ~1 ms a 1 MB chunk here where zarr-python spends ~3 ms, most
of it Python on its one event-loop thread (bench/RESULTS-6.md). Attributes and labels come through
zarr-python.

The second element of a batch is ``y_var``: ``label`` (one int per sample, read once into memory),
or a per-position variable such as a packed text store's ``segment`` (document ids over (sample,
position), :mod:`pipeline.packing`), read window by window with TensorStore like the input, so
language-model pretraining shares this loader's sharding, shuffling and resumable position.

Batches travel as stored (e.g. uint8 pixels, a quarter of float32's bytes, in every buffer and on
the way to a GPU) and are decoded where they are used: :meth:`ZarrLoader.decode` applies the CF
``scale_factor``/``add_offset`` the store wrote, inside the training step's graph, and gives the same
float32 values ``xr.open_zarr`` gives. Decoding in the reading threads instead cost the loader ~15%
of its samples/s (bench/RESULTS-6.md); in the step it is a cast and a multiply-add on one batch.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorstore as ts
import zarr

from models import sharding
from models.config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class LoaderSpec:
    """What one rank reads from one split of a store. The settings have no defaults here: they
    come from the run's :class:`models.config.TrainConfig` (:meth:`from_train`)."""

    store: str                       # path of data.zarr
    split_range: tuple[int, int]     # [start, stop) of the split
    batch_size: int
    shuffle_buffer: int              # samples shuffled together in memory
    read_threads: int                # windows read and decoded in parallel
    logical_shards: int              # fixed per run: the order does not depend on the world size
    seed: int
    rank: int = 0
    world: int = 1
    x_var: str = "image"             # the input variable (e.g. "tokens" for a text dataset)
    y_var: str = "label"             # the second element: "label", or "segment" (a packed text store)

    @classmethod
    def from_train(cls, train: TrainConfig, **facts) -> "LoaderSpec":
        """The spec with ``train``'s loader settings; ``facts`` are store, split_range, seed, rank, world,
        x_var, y_var."""
        return cls(batch_size=train.batch_size, shuffle_buffer=train.shuffle_buffer, read_threads=train.read_threads,
                   logical_shards=train.logical_shards, **facts)


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
    steps = round(1 / scale) if scale else 0
    if offset == 0.0 and steps and np.float64(1 / steps) == scale:
        # e.g. 1/255: a correctly rounded k / 255 in float32 is exactly float32(k * scale_factor), what
        # xarray's float64 decoding gives cast to float32; multiplying by float32(1/255) is not
        def decode(x: tf.Tensor) -> tf.Tensor:
            return tf.cast(x, tf.float32) / float(steps)
    else:
        def decode(x: tf.Tensor) -> tf.Tensor:
            return tf.cast(x, tf.float32) * scale + offset

    return decode


class ZarrLoader:
    """Batches of ``(x, y)`` for one rank (``y``: ``spec.y_var``, the label by default); every rank
    gets the same number per epoch."""

    def __init__(self, spec: LoaderSpec):
        self.spec = spec
        group = zarr.open_group(spec.store, mode="r")
        self._x = group[spec.x_var]
        lo, hi = spec.split_range
        self._y = group[spec.y_var]
        if self._y.ndim == 1:
            # The split's labels (2 bytes a sample) are read once: a Zarr read costs ~1 ms whatever its size.
            self._labels, self._y_reader = self._y[lo:hi].astype(np.int32), None
        else:   # per position (segment): as big as the input, so read with it, window by window
            self._labels, self._y_reader = None, open_reader(spec.store, spec.y_var)
        self._reader = open_reader(spec.store, spec.x_var)
        self.decode = cf_decoder(self._x)   # stored batch -> model input, inside the step's graph
        self.chunk_rows = int(self._x.chunks[0])
        self.window_batches = sharding.window_batches(spec.shuffle_buffer, spec.batch_size)
        self.layout = sharding.ShardLayout(hi - lo, spec.batch_size, spec.logical_shards, self.window_batches)
        self.steps_per_epoch = self.steps_left(0)

    def steps_left(self, consumed: int) -> int:
        """Steps this rank runs in an epoch of which ``consumed`` global batches are done."""
        return sharding.steps_left(self.layout.total, consumed, self.spec.world)

    @property
    def element_spec(self) -> tuple[tf.TensorSpec, tf.TensorSpec]:
        """Batches as stored, from :meth:`window`, :meth:`batches` and :meth:`stream` alike."""
        b = self.spec.batch_size
        return (tf.TensorSpec((b, *self._x.shape[1:]), tf.as_dtype(self._x.dtype)),
                tf.TensorSpec((b, *self._y.shape[1:]), tf.int32))

    def _read_windows(self, epoch: int, windows: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows ``(shard, index)`` of ``epoch`` read at once, side by side (spans that touch are
        read as one, so a chunk they share is read once), and each window's shuffled rows:
        ``(xs, labels, rows)`` with ``rows[i]`` the rows of ``windows[i]`` in ``xs``."""
        spec, layout = self.spec, self.layout
        sequence = sharding.epoch_sequence(spec.split_range, self.chunk_rows, spec.seed, epoch)
        spans = [layout.window_span(k, w) for k, w in windows]
        merged = sharding.merge_spans(spans)
        parts = [p for lo, hi in merged for p in sharding.slice_pieces(sequence, lo, hi)]
        reads = [self._reader[p.start:p.stop].read() for p in parts]     # all issued before any is awaited
        y_reads = [self._y_reader[p.start:p.stop].read() for p in parts] if self._y_reader is not None else None
        lo = spec.split_range[0]
        if y_reads is None:
            labels = np.concatenate([self._labels[p.start - lo:p.stop - lo] for p in parts])
        else:
            labels = np.concatenate([r.result() for r in y_reads]).astype(np.int32, copy=False)
        starts = [a for a, _ in merged]
        offsets = np.cumsum([0] + [b - a for a, b in merged]).tolist()

        def at(position: int) -> int:      # where a position of the epoch's sequence lands in xs
            i = bisect.bisect_right(starts, position) - 1
            return offsets[i] + position - starts[i]

        rows = [at(a) + sharding.window_order(b - a, spec.seed, epoch, k, w) for (a, b), (k, w) in zip(spans, windows)]
        return np.concatenate([r.result() for r in reads]), labels, rows

    def window(self, epoch: int, shard: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``index`` of logical shard ``shard`` in ``epoch``, shuffled, as ``(n_batches,
        batch_size, ...)`` arrays."""
        xs, labels, (rows,) = self._read_windows(epoch, [(shard, index)])
        b = self.spec.batch_size
        return np.take(xs, rows, axis=0).reshape(-1, b, *xs.shape[1:]), labels[rows].reshape(-1, b, *labels.shape[1:])

    def read_round(self, epoch: int, index: int, batches: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The global ``batches`` of round ``index`` (:func:`models.sharding.rank_rounds`), in that
        order, as ``(len(batches), batch_size, ...)`` arrays: the windows they are in are read at
        once and the batches' rows taken in one copy."""
        layout, b = self.layout, self.spec.batch_size
        shards = sorted({layout.window_of(g)[0] for g in batches})
        xs, labels, rows = self._read_windows(epoch, [(k, index) for k in shards])
        of = dict(zip(shards, rows))
        take = np.concatenate([of[k][o * b:(o + 1) * b] for k, _, o in map(layout.window_of, batches)])
        return np.take(xs, take, axis=0).reshape(-1, b, *xs.shape[1:]), labels[take].reshape(-1, b, *labels.shape[1:])

    def rounds(self, epoch: int, consumed: int = 0) -> list[tuple[int, list[int]]]:
        """:func:`models.sharding.rank_rounds` of this rank for the rest of ``epoch``."""
        return sharding.rank_rounds(self.layout, consumed, self.spec.rank, self.spec.world)

    def batches(self, epoch: int, consumed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The rest of the epoch's batches for this rank, as stored numpy arrays (one thread)."""
        for index, batches in self.rounds(epoch, consumed):
            yield from zip(*self.read_round(epoch, index, batches))

    def stream(self, start_epoch: int, consumed: int = 0, end_epoch: int | None = None) -> tf.data.Dataset:
        """This rank's batches from ``consumed`` global batches into ``start_epoch`` to the end of epoch
        ``end_epoch - 1`` as one dataset: built once, rounds read in parallel and in order,
        prefetched across epoch ends (the next epoch's first round is read while the last one is
        evaluated)."""
        end_epoch = start_epoch + 1 if end_epoch is None else end_epoch
        tasks = [(epoch, index, batches) for epoch in range(start_epoch, end_epoch)
                 for index, batches in self.rounds(epoch, consumed if epoch == start_epoch else 0)]
        x_spec, y_spec = self.element_spec

        def read_task(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            epoch, index, batches = tasks[int(i)]
            return self.read_round(epoch, index, batches)

        def read(i):
            xs, labels = tf.numpy_function(read_task, [i], (x_spec.dtype, y_spec.dtype), stateful=False)
            return tf.ensure_shape(xs, (None, *x_spec.shape)), tf.ensure_shape(labels, (None, *y_spec.shape))

        rounds = tf.data.Dataset.range(len(tasks)).map(read, num_parallel_calls=max(self.spec.read_threads, 1),
                                                       deterministic=True)
        # A fixed prefetch of one window's batches, and no autotuning: TF 2.18's tuning thread sleeps
        # up to 60 s between rounds and an iterator's destructor can wait out that sleep (25-35 s at
        # the end of a 2-minute run, measured); the reads' parallelism is fixed above anyway.
        options = tf.data.Options()
        options.autotune.enabled = False
        return rounds.unbatch().prefetch(self.window_batches).with_options(options)

    def epoch(self, epoch: int, consumed: int = 0) -> tf.data.Dataset:
        """The ``steps_left(consumed)`` batches left in ``epoch``."""
        return self.stream(epoch, consumed)

    def close(self) -> None:
        """Nothing to release: kept so callers need not know how reads are scheduled."""


def eval_range(split_range: tuple[int, int], rank: int, world: int) -> tuple[int, int]:
    """The rank's contiguous part of an evaluation split; the last rank also takes the remainder."""
    start, stop = split_range
    share = (stop - start) // world
    return start + rank * share, stop if rank == world - 1 else start + (rank + 1) * share


def eval_dataset(store: str, split_range: tuple[int, int], rank: int, world: int,
                 batch_size: int = 256, x_var: str = "image", y_var: str = "label") -> tf.data.Dataset:
    """All of the rank's evaluation rows, in order and decoded (uneven across ranks is fine: no
    collectives). The split stays in memory as stored (uint8: a quarter of float32), decoded a batch
    at a time."""
    start, stop = eval_range(split_range, rank, world)
    group = zarr.open_group(store, mode="r")
    decode = cf_decoder(group[x_var])
    xs, labels = group[x_var][start:stop], group[y_var][start:stop].astype(np.int32)
    return (tf.data.Dataset.from_tensor_slices((xs, labels)).batch(batch_size)
            .map(lambda x, y: (decode(x), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
