"""SegmentCache views (same process and across a spawned process) and write_array."""
import multiprocessing
import os

import numpy as np
import posix_ipc
import pytest

from tests.shm import shm_children
from tritond.errors import Code, TritonError
from tritond.messages import CLIENT_SHM, TensorRef
from tritond.shm import dtypes as D
from tritond.shm import lengths
from tritond.shm.arena import ArenaPool
from tritond.shm.region import Segment, segment_name
from tritond.shm.views import SegmentCache, array_nbytes, write_array

spawn = multiprocessing.get_context("spawn")
FIXED = [d for d in D.DTYPES if d != "BYTES"]


@pytest.fixture
def pool(server_id):
    p = ArenaPool(server_id, "in", 1 << 16)
    yield p
    p.close()


@pytest.fixture
def cache():
    c = SegmentCache()
    yield c
    c.close()


def _put(pool, arr, datatype):
    slot = pool.alloc(array_nbytes(arr, datatype))
    write_array(slot.view, arr)
    return slot, slot.ref("t", datatype, list(arr.shape))


@pytest.mark.parametrize("datatype", FIXED)
@pytest.mark.parametrize("shape", [(3, 4), (), (0,), (2, 0, 3)])
def test_fixed_round_trip_is_a_view(pool, cache, datatype, shape):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 2 if datatype == "BOOL" else 100, size=shape).astype(D.np_dtype(datatype))
    slot, ref = _put(pool, arr, datatype)
    out = cache.array(ref)
    assert out.dtype == D.np_dtype(datatype) and out.shape == shape
    np.testing.assert_array_equal(out, arr)
    assert np.shares_memory(out, np.frombuffer(cache.buffer(ref.region, 0, 1 << 16), np.uint8)) \
        or not arr.size
    slot.view[:] = b"\x01" * len(slot.view)  # the owner's write shows through: no copy
    assert out.tobytes() == b"\x01" * len(slot.view)


def test_non_contiguous_and_big_endian(pool, cache):
    base = np.arange(48, dtype=np.float32).reshape(6, 8)
    odd = base[::2, ::-3]
    _, ref = _put(pool, odd, "FP32")
    np.testing.assert_array_equal(cache.array(ref), odd)
    be = np.arange(6, dtype=">i4").reshape(2, 3)
    slot, ref = _put(pool, be, "INT32")
    assert bytes(slot.view[:4]) == b"\x00\x00\x00\x00" and bytes(slot.view[4:8]) == b"\x01\x00\x00\x00"
    np.testing.assert_array_equal(cache.array(ref), be)


def test_bytes_tensor(pool, cache):
    arr = np.array([[b"a", "bé"], [b"", 7]], dtype=object)
    slot, ref = _put(pool, arr, "BYTES")
    assert ref.nbytes == D.serialized_size(arr)
    out = cache.array(ref)
    assert out.shape == (2, 2) and out[0, 1] == "bé".encode() and out[1, 1] == b"7"
    wrong = TensorRef("t", "BYTES", [3], ref.region, ref.offset, ref.nbytes)
    with pytest.raises(TritonError, match="of 3 elements has 5 unexpected trailing bytes"):
        cache.array(wrong)
    with pytest.raises(TritonError, match="serialises to"):
        write_array(slot.view, np.array([b"toolongnow"], dtype=object))


def test_write_size_mismatch(pool):
    slot = pool.alloc(8)
    with pytest.raises(TritonError) as e:
        write_array(slot.view, np.zeros(3, np.float32))
    assert e.value.code == Code.INVALID_ARG


def _ref(region, offset, nbytes, dtype="UINT8", shape=None):
    return TensorRef("in0", dtype, [nbytes] if shape is None else shape, region, offset, nbytes)


@pytest.mark.parametrize("offset, nbytes", [
    (2 ** 63, 1), (1, 2 ** 63), (2 ** 63, 2 ** 63), (-1, 4), (0, -1), (4096, 1), (4000, 97), (-4096, 4096)])
def test_out_of_bounds(server_id, cache, offset, nbytes):
    seg = Segment.create(segment_name(server_id, "b"), 4096)
    try:
        with pytest.raises(TritonError) as e:
            cache.buffer(seg.name, offset, nbytes)
        assert e.value.code == Code.INVALID_ARG
        assert "a server buffer" in e.value.message and str(offset) in e.value.message
        assert server_id not in e.value.message        # server segment names never leak
        assert len(cache.buffer(seg.name, 4096, 0)) == 0
        assert len(cache.buffer(seg.name, 4000, 96)) == 96
    finally:
        seg.unlink()
        seg.close()


def test_bad_refs(pool, cache):
    slot = pool.alloc(16)
    for ref, words in [
        (_ref(slot.region, slot.offset, 16, "FP32", [5]), "needs 20 bytes, got 16"),
        (_ref(slot.region, slot.offset, 16, "FP128", [4]), "invalid datatype 'FP128'"),
        (_ref(slot.region, slot.offset, 16, "FP32", [-4]), "negative dimension"),
        (_ref("/client-nosuch-1-x", 0, 4), "unable to open shared memory region '/client-nosuch-1-x'"),
    ]:
        with pytest.raises(TritonError) as e:
            cache.array(ref)
        assert e.value.code == Code.INVALID_ARG and words in e.value.message
    with pytest.raises(TritonError) as e:          # a server segment gone: neutral, retryable
        cache.array(_ref("/tritond-nosuch-1-x", 0, 4))
    assert (e.value.code, e.value.message) == (
        Code.UNAVAILABLE, "a server buffer is no longer available; retry")


def test_truncated_client_region(cache):
    """A client that shrinks its registered region gets INVALID_ARG, never a SIGBUS."""
    key = f"/client-trunc-{os.getpid()}"
    shm = posix_ipc.SharedMemory(key, posix_ipc.O_CREX, size=8192)
    try:
        assert len(cache.buffer(key, 4096, 4096, gen=7)) == 4096
        assert cache.read(key, 0, 16, gen=7) == bytes(16)
        os.ftruncate(shm.fd, 100)
        for use in (lambda: cache.buffer(key, 4096, 4096, gen=7),
                    lambda: cache.read(key, 0, 4096, gen=7)):
            with pytest.raises(TritonError) as e:
                use()
            assert e.value.code == Code.INVALID_ARG
            assert f"shared memory region '{key}' was truncated to 100 bytes" in e.value.message
        assert cache.read(key, 0, 100, gen=7) == bytes(100)
        cache.forget(key, 7)
    finally:
        shm.close_fd()
        shm.unlink()


def test_forget_and_growth(server_id, cache):
    name = segment_name(server_id, "client")
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=100)
    try:
        assert len(cache.buffer(name, 0, 100)) == 100 and name in cache
        os.ftruncate(shm.fd, 200)              # a client region that grew: re-attached
        assert len(cache.buffer(name, 150, 50)) == 50
        cache.forget(name)
        assert name not in cache and len(cache) == 0
        assert len(cache.buffer(name.lstrip("/"), 0, 200)) == 200   # key without '/'
    finally:
        shm.close_fd()
        shm.unlink()


def test_cross_process_zero_copy(server_id, cache):
    conn, child_conn = spawn.Pipe()
    proc = spawn.Process(target=shm_children.writer, args=(server_id, child_conn))
    proc.start()
    try:
        region, offset, nbytes = conn.recv()
        out = cache.array(TensorRef("y", "FP32", [10, 10], region, offset, nbytes))
        np.testing.assert_array_equal(out, np.arange(100, dtype=np.float32).reshape(10, 10))
        conn.send("rewrite")
        assert conn.recv() == "rewritten"
        assert (out == 7).all()                # the child's write shows through our view
        out[0, :] = -1                         # and ours through the child's
        conn.send("check")
        assert conn.recv()[:11] == [-1.0] * 10 + [7.0]
        conn.send("exit")
        proc.join(30)
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert np.asarray(out).sum() == 7 * 90 - 10   # still mapped after the owner unlinked it


def test_unlinked_oneoff_mappings_are_dropped(server_id, cache):
    """A one-off segment its owner unlinked is unmapped here too (else its pages stay pinned)."""
    owner = ArenaPool(server_id, "big", 0)          # no arena: every slot is a one-off
    try:
        a, b = owner.alloc(4096), owner.alloc(4096)
        cache.buffer(a.region, 0, 4096)
        cache.buffer(b.region, 0, 4096)
        assert cache.has_oneoffs and cache.drop_unlinked() == 0
        owner.free(a.region, 0)
        owner.trim()                                 # unlinks a's (spare) segment
        c = owner.alloc(4096)
        cache.buffer(c.region, 0, 4096)              # a new name prunes the gone ones
        assert a.region not in cache and b.region in cache and c.region in cache
        owner.free(b.region, 0)
        owner.free(c.region, 0)
        owner.trim()
        assert cache.drop_unlinked() == 2 and not cache.has_oneoffs and len(cache) == 0
    finally:
        owner.close()


def _staged_with_table(pool, items, table):
    payload = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    at = (len(payload) + 3) & ~3
    slot = pool.alloc(at + len(table))
    slot.view[:len(payload)] = payload
    slot.view[at:] = table
    return slot, TensorRef("t", "BYTES", [len(items)], slot.region, slot.offset, len(payload),
                           lengths_at=at)


def test_bytes_with_the_frontends_length_table(pool, cache):
    items = [b"x\x00", b"", b"element\x00\x00"] * 20
    _, ref = _staged_with_table(pool, items, lengths.table([len(b) for b in items]))
    out = cache.array(ref)
    assert list(out) == items and all(type(e) is bytes for e in out)


def test_a_wrong_length_table_changes_nothing(pool, cache):
    """The table is a hint: a stale or corrupted one gives the same elements (or the
    same error) as the walk."""
    items = [b"element-%d" % i for i in range(40)]
    wrong = lengths.table([len(b) + (i == 7) - (i == 8) for i, b in enumerate(items)])
    _, ref = _staged_with_table(pool, items, wrong)
    assert list(cache.array(ref)) == items
    short = TensorRef("t", "BYTES", [41], ref.region, ref.offset, ref.nbytes,
                      lengths_at=ref.lengths_at)
    with pytest.raises(TritonError, match="holds 40 elements, expected 41"):
        cache.array(short)


def test_a_length_table_in_a_client_region_is_not_read(pool, cache):
    """Only the server's own arena carries tables: a client region's ref never uses one."""
    items = [b"element-%d" % i for i in range(40)]
    _, ref = _staged_with_table(pool, items, b"\xff" * 160)
    client = TensorRef("t", "BYTES", [40], ref.region, ref.offset, ref.nbytes, CLIENT_SHM,
                       lengths_at=ref.lengths_at)
    assert list(cache.array(client)) == items
