"""Which samples each rank reads: pure arithmetic over chunk sizes, no I/O.

The order of an epoch does not depend on the world size, so a run restarted at another size
reads each remaining sample of the epoch exactly once:

1. A split ``[start, stop)`` of the store is cut into its Zarr chunks; every epoch the chunks are
   put in a new order (:func:`chunk_order`: seed and epoch only) and laid end to end.
2. That sequence's ``total = n // batch_size`` whole batches are cut into ``L`` logical shards
   (``train.logical_shards``, fixed per run): shard ``k`` holds the epoch's global batches
   ``k, k + L, k + 2L, ...`` in their order of reading, and its samples are one contiguous stretch
   of the chunk sequence. A shard is read in windows of ``window_batches`` batches (at least
   ``shuffle_buffer`` samples), each shuffled by (seed, epoch, shard, window).
3. At world ``w`` with ``c`` batches of the epoch already consumed, global step ``t`` gives rank
   ``r`` global batch ``c + t*w + r``; every rank runs ``(total - c) // w`` steps (no rank waits in
   an allreduce for a peer with one batch more). A position is (epoch, batches consumed).

Window ``m`` of every shard holds exactly the global batches ``[m*W*L, (m+1)*W*L)`` (``W``
batches a window), so a rank reads its batches in rounds (:func:`rank_rounds`): round ``m`` reads
window ``m`` of the shards it needs, once, and gives its batches in step order. When ``w`` divides
``L``, rank ``r`` needs only shards ``k = c + r (mod w)``, and every batch of the windows it reads:
no window is read by two ranks. Fewer than ``batch_size`` samples sit out an epoch, plus fewer than
``w`` batches; which ones changes with the epoch.

>>> layout = ShardLayout(n_samples=100, batch_size=10, shards=4, window_batches=2)
>>> layout.total, [layout.shard_batches(k) for k in range(4)]
(10, [3, 3, 2, 2])
>>> list(rank_batches(layout.total, consumed=0, rank=1, world=2))
[1, 3, 5, 7, 9]
>>> layout.locate(9), layout.window_of(9)
((1, 2), (1, 1, 0))
>>> rank_rounds(layout, consumed=0, rank=1, world=2)   # round m: window m of every shard
[(0, [1, 3, 5, 7]), (1, [9])]
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of the store, inside one chunk."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def chunk_bounds(split_range: tuple[int, int], chunk_rows: int) -> list[Piece]:
    """The parts of ``split_range`` that fall in each chunk of ``chunk_rows`` rows, in store order."""
    start, stop = split_range
    if chunk_rows < 1 or start < 0 or stop < start:
        raise ValueError(f"need chunk_rows >= 1 and 0 <= start <= stop (got {chunk_rows}, {split_range})")
    edges = [start, *range((start // chunk_rows + 1) * chunk_rows, stop, chunk_rows), stop]
    return [Piece(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def chunk_order(n_chunks: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's chunk order: a permutation that is the same on every rank and at every world size."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n_chunks)


def epoch_sequence(split_range: tuple[int, int], chunk_rows: int, seed: int, epoch: int) -> list[Piece]:
    """The split's chunks in the epoch's order: position ``i`` of the epoch is row ``i`` of this."""
    chunks = chunk_bounds(split_range, chunk_rows)
    return [chunks[i] for i in chunk_order(len(chunks), seed, epoch)]


def window_batches(shuffle_buffer: int, batch_size: int) -> int:
    """Batches per shuffle window: the fewest whole batches holding ``shuffle_buffer`` samples."""
    return max(1, -(-shuffle_buffer // batch_size))


def window_order(n: int, seed: int, epoch: int, shard: int, window: int) -> np.ndarray:
    """How the ``n`` samples of one window are shuffled (independent of rank and world size)."""
    return np.random.default_rng([seed, epoch, shard, window]).permutation(n)


@dataclass(frozen=True)
class ShardLayout:
    """One epoch's world-independent batches: ``shards`` logical shards of whole batches."""

    n_samples: int
    batch_size: int
    shards: int
    window_batches: int

    def __post_init__(self):
        if self.batch_size < 1 or self.shards < 1 or self.window_batches < 1 or self.n_samples < 0:
            raise ValueError(f"need n_samples >= 0 and batch_size, shards, window_batches >= 1 (got {self})")

    @property
    def total(self) -> int:
        """Global batches per epoch."""
        return self.n_samples // self.batch_size

    def shard_batches(self, k: int) -> int:
        """Batches in shard ``k``: the global batches ``k, k + L, ...`` below ``total``."""
        return len(range(k, self.total, self.shards))

    @cached_property
    def _starts(self) -> list[int]:
        at, starts = 0, [0] * self.shards
        for k in sorted(range(self.shards), key=bit_reversed):
            starts[k], at = at, at + self.shard_batches(k)
        return starts

    def shard_start(self, k: int) -> int:
        """Batches laid before shard ``k`` in the epoch's sequence. Shards are laid in bit-reversed
        order (0, 4, 2, 6, 1, 5, 3, 7 for 8), so the shards one rank reads at a world size that is a
        power of two dividing ``L`` lie side by side: a rank's share of the epoch is one stretch of
        chunks, as many as it would be without logical shards."""
        return self._starts[k]

    def locate(self, g: int) -> tuple[int, int]:
        """Global batch ``g`` is batch ``j`` of shard ``k``: ``(k, j)``."""
        return g % self.shards, g // self.shards

    def window_of(self, g: int) -> tuple[int, int, int]:
        """``(shard, window, batch within the window)`` of global batch ``g``."""
        k, j = self.locate(g)
        return (k, *divmod(j, self.window_batches))

    def window_span(self, k: int, window: int) -> tuple[int, int]:
        """Positions ``[lo, hi)`` of the epoch's sequence that window ``window`` of shard ``k`` holds."""
        first = window * self.window_batches
        count = min(self.window_batches, self.shard_batches(k) - first)
        lo = (self.shard_start(k) + first) * self.batch_size
        return lo, lo + max(count, 0) * self.batch_size


def bit_reversed(k: int) -> int:
    """``k``'s 32 bits in reverse order: sorting by it puts the even numbers first, then those
    that are 1 mod 4 after those that are 0 mod 4, and so on.

    >>> sorted(range(8), key=bit_reversed)
    [0, 4, 2, 6, 1, 5, 3, 7]
    """
    return int(f"{k:032b}"[::-1], 2)


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Position spans joined where one ends where the next starts, in order.

    >>> merge_spans([(10, 20), (0, 10), (30, 40)])
    [(0, 20), (30, 40)]
    """
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        elif hi > lo:
            out.append((lo, hi))
    return out


def steps_left(total: int, consumed: int, world: int) -> int:
    """Steps every rank runs for the rest of an epoch of ``total`` batches, ``consumed`` of them done."""
    if world < 1 or not 0 <= consumed:
        raise ValueError(f"need world >= 1 and consumed >= 0 (got {world}, {consumed})")
    return max(total - consumed, 0) // world


def steps_per_epoch(n_samples: int, world: int, batch_size: int) -> int:
    """Steps every rank runs in a whole epoch (whole batches only)."""
    return steps_left(n_samples // batch_size, 0, world)


def rank_batches(total: int, consumed: int, rank: int, world: int) -> range:
    """The global batches ``rank`` of ``world`` reads for the rest of the epoch, in step order."""
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}) (got {rank})")
    steps = steps_left(total, consumed, world)
    return range(consumed + rank, consumed + steps * world, world)


def round_of(layout: ShardLayout, g: int) -> int:
    """The read round of global batch ``g``: round ``m`` is window ``m`` of every shard, which holds
    exactly the global batches ``[m * W * L, (m + 1) * W * L)`` (``W`` batches a window)."""
    return g // (layout.window_batches * layout.shards)


def rank_rounds(layout: ShardLayout, consumed: int, rank: int, world: int) -> list[tuple[int, list[int]]]:
    """What ``rank`` reads for the rest of the epoch, round by round: ``[(round, [global batches in
    step order]), ...]``. One round reads window ``round`` of the shards its batches are in, so a
    rank reads each window at most once; when ``world`` divides the shards no other rank reads it."""
    rounds: dict[int, list[int]] = {}
    for g in rank_batches(layout.total, consumed, rank, world):
        rounds.setdefault(round_of(layout, g), []).append(g)
    return list(rounds.items())


def slice_pieces(pieces: list[Piece], lo: int, hi: int) -> list[Piece]:
    """The rows at positions ``[lo, hi)`` of the sequence ``pieces`` lays end to end."""
    out, offset = [], 0
    for piece in pieces:
        a, b = max(lo, offset), min(hi, offset + piece.size)
        if a < b:
            out.append(Piece(piece.start + a - offset, piece.start + b - offset))
        offset += piece.size
        if offset >= hi:
            break
    return out


def batch_rows(layout: ShardLayout, sequence: list[Piece], seed: int, epoch: int, g: int) -> np.ndarray:
    """The store rows of global batch ``g`` (the loader reads them a window at a time)."""
    k, window, offset = layout.window_of(g)
    rows = np.concatenate([np.arange(p.start, p.stop) for p in slice_pieces(sequence, *layout.window_span(k, window))])
    order = window_order(len(rows), seed, epoch, k, window)
    b = layout.batch_size
    return rows[order][offset * b:(offset + 1) * b]
