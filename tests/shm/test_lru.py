"""The shared-memory LRU (shm/lru.py): eviction order, space, handles, concurrent writers."""
import hashlib
import multiprocessing
import os

import pytest

from tritond.shm import lru
from tritond.shm.region import segment_name

from . import shm_children


def key(n: int) -> bytes:
    return hashlib.blake2b(str(n).encode(), digest_size=16).digest()


@pytest.fixture
def store(server_id):
    made = []

    def make(size: int):
        name = segment_name(server_id, f"cache{len(made)}")
        seg = lru.create(name, size)
        made.append(seg)
        return name, lru.SharedLru.attach(name)
    yield make
    for seg in made:
        seg.unlink()
        seg.close()


def consistent(s: lru.SharedLru) -> None:
    """Every block is free or in exactly one entry's chain; counts and lists agree."""
    h = s.h
    seen, entries = set(), 0
    e = h[lru._HEAD]
    while e >= 0:
        base = s.ents + e * lru.ENTRY
        b, n = h[base + lru._FIRST], 0
        while b >= 0:
            assert b not in seen
            seen.add(b)
            b, n = h[s.next + b], n + 1
        assert n == -(-h[base + lru._NBYTES] // s.block)
        assert s._find(h[base + lru._K0], h[base + lru._K1])[1] == e
        entries += 1
        e = h[base + lru._NEXT]
    used = len(seen)
    b = h[lru._FREE_BLOCK]
    while b >= 0:
        assert b not in seen
        seen.add(b)
        b = h[s.next + b]
    assert len(seen) == s.nblocks and entries == h[lru._COUNT]
    assert h[lru._FREE_BLOCKS] == s.nblocks - used


def test_evicts_the_least_recently_used_to_make_room(store):
    _, s = store(64 * 8)                      # 8 blocks of 64 bytes
    for n in range(4):
        assert s.put(key(n), bytes([n]) * 100)    # 2 blocks each: full
    assert bytes(s.get(key(0))) == b"\0" * 100   # 0 is now the most recent
    s.put(key(4), b"\4" * 100)                   # evicts 1, the least recently used
    assert s.get(key(1)) is None
    assert [k for k in s.keys_by_recency()] == [key(4), key(0), key(3), key(2)]
    s.put(key(5), b"\5" * 300)                   # 5 blocks: evicts 2, 3 and 0
    assert s.keys_by_recency() == [key(5), key(4)]
    assert s.stats()["evictions"] == 4
    consistent(s)
    s.close()


def test_an_entry_bigger_than_the_store_is_not_kept(store):
    _, s = store(64 * 4)
    assert s.put(key(1), b"x" * 100)
    assert not s.put(key(2), b"y" * (64 * 4 + 1)) and not s.put(key(3), b"")
    assert bytes(s.get(key(1))) == b"x" * 100     # nothing was evicted for it
    s.close()


def test_two_handles_see_one_store_and_fragmented_chains_read_back(store):
    name, a = store(64 * 64)
    b = lru.SharedLru.attach(name)
    values = {n: os.urandom(1 + (n * 37) % 500) for n in range(200)}
    for n, v in values.items():
        (a if n % 2 else b).put(key(n), v)
        if n % 3 == 0:
            a.get(key(n // 2))                    # reorders, so frees come out of order
    found = 0
    for n, v in values.items():
        got = (b if n % 2 else a).get(key(n))
        if got is not None:
            assert bytes(got) == v
            found += 1
    assert found and a.stats() == b.stats()
    consistent(a)
    a.close()
    b.close()


def test_a_key_stored_twice_keeps_the_first_entry(store):
    _, s = store(4096)
    s.put(key(1), b"first")
    s.put(key(1), b"second")
    assert bytes(s.get(key(1))) == b"first" and s.stats()["entries"] == 1
    s.close()


def test_concurrent_writers_in_processes_never_see_a_torn_entry(store):
    name, s = store(64 * 128)                     # small: constant eviction under contention
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for seed in range(3):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=shm_children.lru_writer, args=(name, seed, 1500, child))
        p.start()
        pipes.append(parent)
        procs.append(p)
    bad = [conn.recv() for conn in pipes]
    for p in procs:
        p.join(30)
    assert bad == [0, 0, 0] and all(p.exitcode == 0 for p in procs)
    assert s.stats()["inserts"] > 0
    consistent(s)
    s.close()
