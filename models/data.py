"""Zarr -> tf.data: each rank reads only its own contiguous, equal-sized shard of a split.

A split's range ``[start, stop)`` of ``n`` samples is cut into ``size`` shards of ``n // size``
samples (the last ``n % size`` samples are left to no rank), so every rank runs exactly the same
number of steps: a rank never waits in an allreduce for a peer that has one batch more.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import zarr


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of the store that one rank owns."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def shard_of(split_range: tuple[int, int], rank: int, size: int) -> Shard:
    """The equal shard of ``split_range`` for ``rank`` of ``size`` ranks."""
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}) (got {rank})")
    start, stop = split_range
    per_rank = (stop - start) // size
    return Shard(start + rank * per_rank, start + (rank + 1) * per_rank)


def read_shard(store_path: str, shard: Shard) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one shard, reading only the Zarr chunks that overlap it."""
    group = zarr.open_group(store_path, mode="r")
    return group["image"][shard.start:shard.stop], group["label"][shard.start:shard.stop].astype("int32")


def train_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_buffer: int,
                  seed: int) -> tf.data.Dataset:
    """Shuffled (reseeded every epoch), batched, fixed-length batches, prefetched."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.shuffle(min(shuffle_buffer, len(labels)), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
