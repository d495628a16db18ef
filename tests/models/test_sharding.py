"""Balanced chunk sharding: every rank gets the same number of samples, whatever the sizes."""
from hypothesis import given, settings
from hypothesis import strategies as st

from models import sharding

layouts = st.tuples(st.integers(0, 3000),     # split start
                    st.integers(0, 5000),     # samples in the split
                    st.integers(1, 700),      # chunk rows
                    st.integers(1, 9),        # world size
                    st.integers(0, 3))        # epoch


@settings(max_examples=300, deadline=None)
@given(layouts, st.integers(1, 128))
def test_every_rank_runs_the_same_number_of_steps(layout, batch):
    start, n, chunk_rows, world, epoch = layout
    counts = [sum(p.size for p in sharding.epoch_pieces((start, start + n), chunk_rows, r, world, 7, epoch))
              for r in range(world)]
    assert counts == [n // world] * world
    assert {c // batch for c in counts} == {sharding.steps_per_epoch(n, world, batch)}


@settings(max_examples=300, deadline=None)
@given(layouts)
def test_ranks_read_disjoint_rows_inside_the_split_and_within_chunks(layout):
    start, n, chunk_rows, world, epoch = layout
    seen = set()
    for rank in range(world):
        pieces = sharding.epoch_pieces((start, start + n), chunk_rows, rank, world, 7, epoch)
        assert len(pieces) <= -(-n // chunk_rows) + 1
        for p in pieces:
            assert start <= p.start < p.stop <= start + n
            assert p.start // chunk_rows == (p.stop - 1) // chunk_rows      # one chunk each
            rows = set(range(p.start, p.stop))
            assert not rows & seen
            seen |= rows
    assert n - len(seen) == n % world          # fewer than `world` samples sit out the epoch


def test_chunk_order_changes_with_the_epoch_and_not_with_the_rank():
    orders = [tuple(sharding.chunk_order(50, seed=3, epoch=e)) for e in range(3)]
    assert len(set(orders)) == 3
    assert orders[0] == tuple(sharding.chunk_order(50, seed=3, epoch=0))


def test_a_rank_outside_the_world_is_an_error():
    import pytest
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\) \(got 2\)"):
        sharding.epoch_pieces((0, 10), 4, rank=2, world=2, seed=0, epoch=0)
