"""Child-process bodies for the cross-process shm tests (importable under spawn)."""
import os

import numpy as np

from tritond.shm.arena import ArenaPool
from tritond.shm.region import Segment, segment_name
from tritond.shm.views import write_array


def writer(server_id, conn):
    """Write a tensor into its own arena, report where, rewrite it on request, check ours."""
    pool = ArenaPool(server_id, "out", 1 << 16)
    try:
        slot = pool.alloc(400)
        write_array(slot.view, np.arange(100, dtype=np.float32).reshape(10, 10))
        conn.send((slot.region, slot.offset, slot.nbytes))
        assert conn.recv() == "rewrite"
        write_array(slot.view, np.full((10, 10), 7, dtype=np.float32))
        conn.send("rewritten")
        assert conn.recv() == "check"
        conn.send(np.frombuffer(slot.view, np.float32).tolist())
        assert conn.recv() == "exit"
    finally:
        pool.close()


def holder(server_id, tag, conn):
    """Create a segment, wait until told to go, then exit without unlinking."""
    seg = Segment.create(segment_name(server_id, tag), 4096)
    conn.send(seg.name)
    conn.recv()
    os._exit(0)


def sleeper(conn):
    """Stay alive until told to go (a live pid for the pid-reuse test)."""
    conn.send(os.getpid())
    conn.recv()


def lru_writer(name, seed, rounds, conn):
    """Insert and read back entries of a shared LRU from another process; every entry
    read must be exactly what some writer stored under that key (key = digest of value)."""
    import hashlib
    import random

    from tritond.shm.lru import SharedLru

    store = SharedLru.attach(name)
    rng = random.Random(seed)
    bad = 0
    try:
        for _ in range(rounds):
            value = bytes([rng.randrange(256)]) * rng.randrange(1, 700)
            key = hashlib.blake2b(value, digest_size=16).digest()
            store.put(key, value)
            got = store.get(key)
            if got is not None and hashlib.blake2b(got, digest_size=16).digest() != key:
                bad += 1
        conn.send(bad)
    finally:
        store.close()
