"""Arena allocator properties and ArenaPool (arena + one-off segments)."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritond.shm.arena import ALIGN, Arena, ArenaPool
from tritond.shm.region import list_segments

ops = st.lists(st.tuples(st.booleans(), st.integers(0, 3000)), max_size=120)


def _need(n):
    return max(ALIGN, -(-n // ALIGN) * ALIGN)


def _check_free_lists(arena):
    """The three free-block indexes agree, blocks are coalesced, and with the live
    blocks they tile the capacity exactly (alloc/free update them inline)."""
    by_size = arena._by_size
    assert by_size == sorted(by_size)
    blocks = {key & ((1 << 48) - 1): key >> 48 for key in by_size}
    assert len(blocks) == len(by_size) and blocks == arena._free_at
    assert arena._free_end == {start + size: start for start, size in blocks.items()}
    assert not set(arena._free_end) & set(blocks)          # no two free blocks touch
    spans = sorted([*blocks.items(), *arena._live.items()])
    pos = 0
    for start, size in spans:
        assert start == pos and size > 0
        pos += size
    assert pos == arena.capacity


@settings(max_examples=300)
@given(st.integers(0, 20000), ops, st.randoms(use_true_random=False))
def test_arena_never_overlaps_and_recovers(capacity, script, rnd):
    arena = Arena(capacity)
    cap = arena.capacity
    live = {}                                  # offset -> reserved bytes
    for is_alloc, n in script:
        if is_alloc or not live:
            off = arena.alloc(n)
            if off is None:                    # refused only when nothing fits
                assert arena.largest_free < _need(n)
                continue
            assert off % ALIGN == 0 and 0 <= off and off + _need(n) <= cap
            for o, size in live.items():
                assert off + _need(n) <= o or o + size <= off
            live[off] = _need(n)
        else:
            off = sorted(live)[n % len(live)]
            arena.free(off)
            del live[off]
        assert arena.used == sum(live.values()) and len(arena) == len(live)
        _check_free_lists(arena)
    order = list(live)
    rnd.shuffle(order)
    for off in order:
        arena.free(off)
        _check_free_lists(arena)
    assert arena.used == 0
    assert arena.free_blocks == (1 if cap else 0)
    if cap:
        assert arena.alloc(cap) == 0


def test_arena_errors():
    arena = Arena(1024)
    off = arena.alloc(0)
    assert off == 0 and arena.used == ALIGN
    arena.free(off)
    with pytest.raises(ValueError):
        arena.free(off)                        # double free
    with pytest.raises(ValueError):
        arena.free(64)                         # never allocated
    with pytest.raises(ValueError):
        arena.alloc(-1)
    assert arena.alloc(1025) is None


def test_pool_is_lazy_and_named_by_owner(server_id):
    pool = ArenaPool(server_id, "in", 1 << 16)
    assert list_segments(server_id) == []
    slot = pool.alloc(100)
    assert slot.region == f"/tritond-{server_id}-{os.getpid()}-in"
    assert len(slot.view) == 100 and not slot.view.readonly and slot.offset % ALIGN == 0
    assert list_segments(server_id) == [slot.region]
    ref = slot.ref("x", "FP32", [25])
    assert (ref.region, ref.offset, ref.nbytes, ref.shape) == (slot.region, slot.offset, 100, [25])
    pool.free(slot.region, slot.offset)
    pool.close()
    assert list_segments(server_id) == []


def test_pool_falls_back_to_oneoffs(server_id):
    pool = ArenaPool(server_id, "in", 4096)
    try:
        big = pool.alloc(10000)                # too big for the arena
        assert big.region.endswith("-in-x1") and big.offset == 0 and len(big.view) == 10000
        big.view[-1] = 5
        full = pool.alloc(4096)                # fills the arena
        assert full.region == pool.region
        over = pool.alloc(1)                   # arena full
        assert over.region.endswith("-in-x2")
        assert pool.stats()["oneoff_live"] == 2 and pool.stats()["used"] == 4096
        assert len(list_segments(server_id)) == 3
        pool.free(big.region, 0)
        assert big.region in list_segments(server_id)       # kept as a spare ...
        again = pool.alloc(9000)                            # ... and reused when it fits
        assert again.region == big.region and len(again.view) == 9000
        pool.free(again.region, 0)
        assert pool.trim() >= 10000
        assert big.region not in list_segments(server_id)   # trim gives it back
        with pytest.raises(ValueError):
            pool.free(big.region, 0)           # double free of a one-off
        with pytest.raises(ValueError):
            pool.free(pool.region, full.offset + 64)
        pool.free(full.region, full.offset)
        assert pool.alloc(4096).region == pool.region   # space came back
    finally:
        pool.close()
    assert list_segments(server_id) == []


def test_pool_zero_and_no_arena(server_id):
    pool = ArenaPool(server_id, "o", 0)
    slot = pool.alloc(0)
    assert len(slot.view) == 0 and slot.region.endswith("-o-x1")
    np.frombuffer(pool.alloc(8).view, np.int64)[0] = -1
    pool.close()
    pool.close()
    with pytest.raises(ValueError):
        pool.alloc(1)
    with pytest.raises(ValueError):
        pool.alloc(-1)


def test_pool_close_with_live_views(server_id):
    pool = ArenaPool(server_id, "v", 4096)
    a, b = pool.alloc(64), pool.alloc(8192)
    pool.close()                               # views still exported: must not raise
    a.view[0] = 1                              # mapping outlives close until views go
    b.view[0] = 1
    assert list_segments(server_id) == []


def test_pool_serves_with_one_offs_when_the_arena_cannot_fit(server_id):
    # 1 TiB exceeds any /dev/shm here: fallocate refuses it at once (ENOSPC), and
    # the pool must keep serving with per-tensor segments instead of failing
    # every request (the parent logs how to enlarge /dev/shm at start).
    pool = ArenaPool(server_id, "big", 1 << 40)
    slot = pool.alloc(64)
    slot.view[:] = b"x" * 64
    assert pool.region is None and pool.size == 0
    assert slot.region.endswith("-big-x1")
    pool.free(slot.region, slot.offset)
    pool.close()
