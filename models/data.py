"""Zarr -> tf.data: balanced, reshuffled every epoch, read in parallel, resumable mid-epoch.

Each rank reads the pieces :func:`models.sharding.epoch_pieces` gives it. Pieces are grouped into
windows of at least ``shuffle_buffer`` samples; a window is read with several threads (the Zarr
codecs decode chunks outside the GIL) while the previous one is served, shuffled in memory and cut
into batches. The order of an epoch depends only on (seed, epoch, rank), so the position of a
run is just (epoch, step): :meth:`ZarrLoader.epoch` can start at any step.
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
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
    read_threads: int = 4            # parallel chunk reads


def _windows(pieces: list[sharding.Piece], min_size: int) -> list[list[sharding.Piece]]:
    """Consecutive pieces grouped until each group holds at least ``min_size`` samples."""
    groups, current, held = [], [], 0
    for piece in pieces:
        current.append(piece)
        held += piece.size
        if held >= min_size:
            groups.append(current)
            current, held = [], 0
    return groups + ([current] if current else [])


class ZarrLoader:
    """Batches of ``(image, label)`` for one rank; every rank gets the same number per epoch."""

    def __init__(self, spec: LoaderSpec):
        self.spec = spec
        group = zarr.open_group(spec.store, mode="r")
        self._image, self._label = group["image"], group["label"]
        self.chunk_rows = int(self._image.chunks[0])
        n = spec.split_range[1] - spec.split_range[0]
        self.steps_per_epoch = sharding.steps_per_epoch(n, spec.world, spec.batch_size)
        self._pool = ThreadPoolExecutor(max(spec.read_threads, 1), thread_name_prefix="zarr-read")

    @property
    def element_spec(self) -> tuple[tf.TensorSpec, tf.TensorSpec]:
        shape = (self.spec.batch_size, *self._image.shape[1:])
        return (tf.TensorSpec(shape, tf.as_dtype(self._image.dtype)), tf.TensorSpec((self.spec.batch_size,), tf.int32))

    def _read(self, piece: sharding.Piece) -> tuple[np.ndarray, np.ndarray]:
        return self._image[piece.start:piece.stop], self._label[piece.start:piece.stop]

    def _read_window(self, window: list[sharding.Piece]) -> list[Future]:
        return [self._pool.submit(self._read, piece) for piece in window]

    def _shuffled(self, futures: list[Future], epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [f.result() for f in futures]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts]).astype(np.int32)
        order = np.random.default_rng([self.spec.seed, epoch, self.spec.rank, index]).permutation(len(labels))
        return images[order], labels[order]

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The epoch's batches from ``start_step`` on, as numpy arrays."""
        spec, b = self.spec, self.spec.batch_size
        pieces = sharding.epoch_pieces(spec.split_range, self.chunk_rows, spec.rank, spec.world, spec.seed, epoch)
        windows = _windows(pieces, spec.shuffle_buffer)
        begin = start_step * b                   # position in this rank's epoch sequence
        first, offset = 0, 0
        while first < len(windows) and offset + sum(p.size for p in windows[first]) <= begin:
            offset += sum(p.size for p in windows[first])
            first += 1
        pending = self._read_window(windows[first]) if first < len(windows) else None
        carry_x = carry_y = None
        for index in range(first, len(windows)):
            images, labels = self._shuffled(pending, epoch, index)
            pending = self._read_window(windows[index + 1]) if index + 1 < len(windows) else None
            skip, offset = max(begin - offset, 0), offset + len(labels)
            images, labels = images[skip:], labels[skip:]
            if carry_x is not None and len(carry_y):
                images, labels = np.concatenate([carry_x, images]), np.concatenate([carry_y, labels])
            whole = (len(labels) // b) * b
            for i in range(0, whole, b):
                yield images[i:i + b], labels[i:i + b]
            carry_x, carry_y = images[whole:], labels[whole:]
        if pending:
            for f in pending:
                f.cancel()

    def epoch(self, epoch: int, start_step: int = 0) -> tf.data.Dataset:
        """``steps_per_epoch - start_step`` batches, prefetched."""
        ds = tf.data.Dataset.from_generator(lambda: self._limited(epoch, start_step),
                                            output_signature=self.element_spec)
        return ds.prefetch(2)

    def _limited(self, epoch: int, start_step: int):
        for step, batch in enumerate(self.batches(epoch, start_step), start=start_step):
            if step >= self.steps_per_epoch:
                return
            yield batch

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def eval_range(split_range: tuple[int, int], rank: int, world: int) -> tuple[int, int]:
    """The rank's contiguous part of an evaluation split; the last rank also takes the remainder."""
    start, stop = split_range
    share = (stop - start) // world
    return start + rank * share, stop if rank == world - 1 else start + (rank + 1) * share


def eval_dataset(store: str, split_range: tuple[int, int], rank: int, world: int,
                 batch_size: int = 256) -> tf.data.Dataset:
    """All of the rank's evaluation rows, in order (uneven across ranks is fine: no collectives)."""
    start, stop = eval_range(split_range, rank, world)
    group = zarr.open_group(store, mode="r")
    images, labels = group["image"][start:stop], group["label"][start:stop].astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
