"""Which samples each rank reads in an epoch: pure arithmetic over chunk sizes, no I/O.

A split ``[start, stop)`` of the store is cut into its Zarr chunks. Every epoch the chunks are put
in a new order (the same on every rank: it depends only on the seed and the epoch), laid end to
end, and that sequence is cut into ``world`` equal parts of ``n // world`` samples. A rank gets
whole chunks plus at most two partial ones, every rank gets exactly the same number of samples,
and so the same number of steps: no rank ever waits in an allreduce for a peer with one batch
more. At most ``world - 1`` samples sit out an epoch, and which ones changes with the epoch.

>>> pieces = epoch_pieces((0, 10), chunk_rows=4, rank=0, world=2, seed=0, epoch=0)
>>> sum(p.size for p in pieces)
5
"""
from __future__ import annotations

from dataclasses import dataclass

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
    """The epoch's chunk order: a permutation that is the same on every rank."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n_chunks)


def samples_per_rank(n_samples: int, world: int) -> int:
    return n_samples // world


def steps_per_epoch(n_samples: int, world: int, batch_size: int) -> int:
    """Steps every rank runs per epoch (whole batches only)."""
    return samples_per_rank(n_samples, world) // batch_size


def epoch_pieces(split_range: tuple[int, int], chunk_rows: int, rank: int, world: int, seed: int,
                 epoch: int) -> list[Piece]:
    """The pieces ``rank`` of ``world`` reads in ``epoch``, in reading order."""
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}) (got {rank})")
    chunks = chunk_bounds(split_range, chunk_rows)
    ordered = [chunks[i] for i in chunk_order(len(chunks), seed, epoch)]
    share = samples_per_rank(split_range[1] - split_range[0], world)
    return slice_pieces(ordered, rank * share, (rank + 1) * share)


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
