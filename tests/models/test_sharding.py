"""World-independent sharding: equal steps on every rank, each sample once, at any world size."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import sharding

layouts = st.builds(sharding.ShardLayout,
                    n_samples=st.integers(0, 3000), batch_size=st.integers(1, 64),
                    shards=st.integers(1, 16), window_batches=st.integers(1, 9))


def _rows(layout, chunk_rows, start, epoch, batches):
    sequence = sharding.epoch_sequence((start, start + layout.n_samples), chunk_rows, 7, epoch)
    return [sharding.batch_rows(layout, sequence, 7, epoch, g) for g in batches]


@settings(max_examples=300, deadline=None)
@given(layouts, st.integers(1, 9), st.data())
def test_every_rank_runs_the_same_steps_and_the_ranks_cover_the_rest_once(layout, world, data):
    consumed = data.draw(st.integers(0, layout.total))
    got = [list(sharding.rank_batches(layout.total, consumed, r, world)) for r in range(world)]
    steps = sharding.steps_left(layout.total, consumed, world)
    assert [len(g) for g in got] == [steps] * world
    assert sorted(sum(got, [])) == list(range(consumed, consumed + steps * world))
    assert layout.total - consumed - steps * world < world          # fewer than `world` batches sit out


@settings(max_examples=300, deadline=None)
@given(layouts, st.integers(1, 9), st.data())
def test_a_ranks_rounds_are_its_batches_in_step_order_each_window_read_once(layout, world, data):
    consumed, rank = data.draw(st.integers(0, layout.total)), data.draw(st.integers(0, world - 1))
    rounds = sharding.rank_rounds(layout, consumed, rank, world)
    assert sum((gs for _, gs in rounds), []) == list(sharding.rank_batches(layout.total, consumed, rank, world))
    read = [(k, w) for m, gs in rounds for k, w in {layout.window_of(g)[:2] for g in gs}]
    assert all(w == m for m, gs in rounds for _, w, _ in map(layout.window_of, gs))    # round m: windows m
    assert len(read) == len(set(read))                                               # no window twice


@settings(max_examples=200, deadline=None)
@given(layouts, st.integers(1, 700), st.integers(0, 3000), st.integers(0, 3))
def test_an_epochs_batches_are_distinct_rows_of_the_split_within_windows_of_one_shard(layout, chunk_rows, start,
                                                                                       epoch):
    rows = _rows(layout, chunk_rows, start, epoch, range(layout.total))
    flat = np.concatenate(rows) if rows else np.array([], int)
    assert all(len(r) == layout.batch_size for r in rows)
    assert len(set(flat.tolist())) == len(flat) == layout.total * layout.batch_size
    assert all(start <= r < start + layout.n_samples for r in flat)
    assert layout.n_samples - len(flat) < layout.batch_size      # fewer than one batch sits out


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 32), st.sampled_from([(2, 1), (4, 2), (3, 2), (2, 3), (1, 4)]),
       st.integers(1, 12), st.data())
def test_a_restart_at_another_world_size_reads_each_remaining_sample_once(n, batch, worlds, shards, data):
    """Positions written at world w1 after t steps, resumed at w2: every sample of the epoch read
    before and after the restart is read exactly once, and fewer than w2 batches sit out."""
    w1, w2 = worlds
    layout = sharding.ShardLayout(n, batch, shards, data.draw(st.integers(1, 6)))
    t = data.draw(st.integers(0, sharding.steps_left(layout.total, 0, w1)))
    before = [g for r in range(w1) for g in sharding.rank_batches(layout.total, 0, r, w1)[:t]]
    consumed = t * w1                                          # the position a checkpoint records
    assert sorted(before) == list(range(consumed))
    after = [g for r in range(w2) for g in sharding.rank_batches(layout.total, consumed, r, w2)]
    read = np.concatenate(_rows(layout, 50, 10, 1, before + after) or [np.array([], int)]).tolist()
    assert len(read) == len(set(read))                         # no sample twice
    assert layout.total * batch - len(read) < w2 * batch      # and all but < w2 batches of them read


@settings(max_examples=200, deadline=None)
@given(layouts, st.sampled_from([1, 2, 4, 8]), st.data())
def test_a_world_that_divides_the_shards_reads_each_window_on_one_rank_and_uses_all_of_it(layout, world, data):
    if layout.shards % world:
        layout = sharding.ShardLayout(layout.n_samples, layout.batch_size, world * layout.shards,
                                      layout.window_batches)
    consumed = data.draw(st.integers(0, layout.total))
    owner, used = {}, {}
    for r in range(world):
        for _m, gs in sharding.rank_rounds(layout, consumed, r, world):
            for g in gs:
                k, w, o = layout.window_of(g)
                assert owner.setdefault((k, w), r) == r               # a window is read by one rank
                used.setdefault((k, w), []).append(o)
    last = consumed + sharding.steps_left(layout.total, consumed, world) * world
    for (k, w), offsets in used.items():                              # and all of it is used, but the
        first = w * layout.window_batches                              # batches consumed before the restart
        expected = [o for o in range(min(layout.window_batches, layout.shard_batches(k) - first))
                    if consumed <= (first + o) * layout.shards + k < last]   # and after the epoch's last step
        assert offsets == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5000), st.integers(1, 64), st.sampled_from([2, 4, 8, 16]), st.sampled_from([1, 2, 4]),
       st.integers(1, 9))
def test_at_a_power_of_two_world_a_ranks_share_is_one_stretch_of_the_epoch(n, batch, shards, world, window_batches):
    layout = sharding.ShardLayout(n, batch, max(shards, world), window_batches)
    for r in range(world):
        spans = [layout.window_span(k, w) for k in range(layout.shards) if k % world == r
                 for w in range(-(-layout.shard_batches(k) // window_batches))]
        assert len(sharding.merge_spans(spans)) <= 1


def test_chunk_order_changes_with_the_epoch_and_not_with_anything_else():
    orders = [tuple(sharding.chunk_order(50, seed=3, epoch=e)) for e in range(3)]
    assert len(set(orders)) == 3
    assert orders[0] == tuple(sharding.chunk_order(50, seed=3, epoch=0))


@pytest.mark.parametrize("call, message", [
    # a rank outside the world
    (lambda: sharding.rank_batches(10, 0, rank=2, world=2), r"rank must be in \[0, 2\) \(got 2\)"),
    # no shards
    (lambda: sharding.ShardLayout(10, 2, 0, 1), r"need n_samples >= 0 and batch_size, shards, window_batches >= 1"),
])
def test_impossible_layouts_say_what_is_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()
