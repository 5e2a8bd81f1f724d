"""OutputWriter: what lands in shared memory, and the slot bookkeeping behind release."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from tritond.messages import CLIENT_SHM, SERVER_SHM, ErrorInfo, TensorRef
from tritond.shm import dtypes as D
from tritond.shm import lengths
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache
from tritond.workers.outputs import Encoded, OutputWriter


@pytest.fixture
def writer():
    pool, cache = ArenaPool(uuid.uuid4().hex, "w", 1 << 16), SegmentCache()
    yield OutputWriter(pool, cache)
    pool.close()
    cache.close()


def _read(writer, ref) -> np.ndarray:
    return writer._cache.array(ref).copy()


@pytest.mark.parametrize("arr", [
    np.arange(16, dtype=np.float32),                          # the common raw-byte copy
    np.array([True, False, True]),
    np.arange(6, dtype=np.float16).reshape(2, 3),
    np.array(7, dtype=np.int64),                              # 0-d
    np.arange(12, dtype=np.int32).reshape(3, 4).T,            # not C-ordered
    np.arange(5, dtype=">f4"),                                # big-endian: swapped
    np.arange(5, dtype=">i2")[::2],                           # big-endian and strided
    np.zeros((0, 3), np.float32),                             # empty
])
def test_written_bytes_are_protocol_layout(writer, arr):
    for _ in range(2):          # the second write goes through the dtype cache
        ref = writer.write("OUT", arr, arr.shape, None)
        got = _read(writer, ref)
        assert ref.nbytes == arr.nbytes and list(ref.shape) == list(arr.shape)
        assert got.dtype.byteorder in "=|<" and np.array_equal(got, arr)
        assert writer._cache.buffer(ref.region, ref.offset, ref.nbytes).tobytes() == \
            np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes()
        assert writer.release(ref.region, ref.offset)


def test_big_endian_dtype_is_not_cached_as_native(writer):
    assert Encoded(np.zeros(2, "<u2")).plain               # first sight of the dtype
    assert not Encoded(np.zeros(2, ">f4")).plain
    assert Encoded(np.zeros(2, "<f4")).plain
    assert Encoded(np.zeros(4, "<f4")[::2]).plain      # plain; copy_into checks the order
    assert Encoded(np.array([b"x"], object)).data is not None


def test_single_slot_released_once(writer):
    refs = [writer.write("OUT", np.full(4, i, np.float32), (4,), None) for i in range(3)]
    assert writer.live_slots == 3 and writer._pool.stats()["live"] == 3
    assert writer.release(refs[1].region, refs[1].offset)
    assert not writer.release(refs[1].region, refs[1].offset)      # already released
    assert not writer.release(refs[1].region, refs[1].offset + 1)  # never written
    assert np.array_equal(_read(writer, refs[2]), np.full(4, 2, np.float32))
    for ref in (refs[0], refs[2]):
        assert writer.release(ref.region, ref.offset)
    assert writer.live_slots == 0 and writer._pool.stats()["live"] == 0
    assert writer._slot_of == {} and writer._keys == {}


def test_batch_slots_and_single_slots_mix(writer):
    one = writer.write("A", np.ones(3, np.float32), (3,), None)
    batch = writer.write_batch("B", np.arange(6, dtype=np.float32).reshape(3, 2), [1, 2],
                               [(1, 2), (2, 2)], [None, None])
    assert writer.live_slots == 2
    assert np.array_equal(_read(writer, batch[1]), [[2, 3], [4, 5]])
    assert writer.release(batch[0].region, batch[0].offset)
    assert writer.live_slots == 2                      # the batch slot still has a slice
    assert writer.release(one.region, one.offset)
    assert writer.release(batch[1].region, batch[1].offset)
    assert writer.live_slots == 0 and writer._slot_of == {} and writer._keys == {}
    assert writer._pool.stats()["live"] == 0


def test_oneoff_slot_single_release(writer):
    big = np.ones(1 << 15, np.float32)                 # 128 KiB: larger than the arena
    ref = writer.write("OUT", big, big.shape, None)
    assert ref.region != writer._pool.region
    assert np.array_equal(_read(writer, ref), big)
    assert writer.release(ref.region, ref.offset)
    assert writer.live_slots == 0 and not writer.release(ref.region, ref.offset)


def test_write_all_shares_one_aligned_slot(writer):
    outs = [("FLAGS", np.array([True, False, True]), (3,), None),      # 3 bytes
            ("EMPTY", np.zeros((0, 2), np.float32), (0, 2), None),
            ("VALUES", np.arange(20, dtype=np.float64), (20,), None)]
    refs = writer.write_all(outs)
    assert [r.name for r in refs] == ["FLAGS", "EMPTY", "VALUES"]
    assert len({r.region for r in refs}) == 1 and writer.live_slots == 1
    base = refs[0].offset
    assert [r.offset - base for r in refs] == [0, 64, 128]   # aligned, each its own offset
    assert [r.nbytes for r in refs] == [3, 0, 160]
    for ref, (_, arr, _, _) in zip(refs, outs):
        assert np.array_equal(_read(writer, ref), arr)
    for ref in refs:
        assert writer.live_slots == 1 and writer._pool.stats()["live"] == 1
        assert writer.release(ref.region, ref.offset)
    assert writer.live_slots == 0 and writer._pool.stats()["live"] == 0
    assert writer._slot_of == {} and writer._keys == {}


def test_write_all_single_output_and_nothing(writer):
    (ref,) = writer.write_all([("OUT", np.ones(2, np.int8), (1, 2), None)])
    assert list(ref.shape) == [1, 2] and writer._keys == {}
    assert writer.release(ref.region, ref.offset) and writer.live_slots == 0
    assert writer.write_all([]) == []


def test_write_all_client_region_and_its_error(writer):
    client = ArenaPool(uuid.uuid4().hex, "c", 4096)   # stands in for a client region
    try:
        spot = client.alloc(64)
        dest = TensorRef("B", "FP32", [4], spot.region, spot.offset, 64, kind=CLIENT_SHM)
        refs = writer.write_all([("A", np.ones(4, np.float32), (4,), None),
                                 ("B", np.full(4, 2, np.float32), (4,), dest),
                                 ("C", np.ones(1, np.int16), (1,), None)])
        assert [r.kind for r in refs] == [SERVER_SHM, CLIENT_SHM, SERVER_SHM]
        assert np.frombuffer(spot.view[:16], np.float32).tolist() == [2, 2, 2, 2]
        assert refs[2].offset - refs[0].offset == 64 and writer.live_slots == 1
        small = TensorRef("B", "FP32", [4], spot.region, spot.offset, 8, kind=CLIENT_SHM)
        err = writer.write_all([("A", np.ones(4, np.float32), (4,), None),
                                ("B", np.ones(4, np.float32), (4,), small),
                                ("C", np.ones(4, object), (4,), None)])
        assert isinstance(err, ErrorInfo) and "'B' (8 bytes)" in err.message
        assert writer.live_slots == 1                  # nothing allocated for the failure
        with pytest.raises(Exception, match="complex64"):  # the writer's caller reports it
            writer.write_all([("A", np.ones(4, np.float32), (4,), None),
                              ("Z", np.ones(2, np.complex64), (2,), None)])
        assert writer.live_slots == 1
    finally:
        client.close()


def _strings(n, tail=b""):
    return np.array([b"s%d%s" % (i, tail) for i in range(n)], dtype=object)


def test_bytes_outputs_carry_their_length_table(writer):
    """Arena BYTES outputs of 32+ elements have the table behind the payload (4-byte
    aligned, inside the output's own span of the slot); the next output starts after it."""
    arr = _strings(40, b"\x00")
    refs = writer.write_all([("S", arr, (40,), None), ("F", np.ones(3, np.float32), (3,), None)])
    s, f = refs
    assert s.lengths_at == (s.nbytes + 3) & ~3 and f.lengths_at == 0
    table = writer._cache.buffer(s.region, s.offset + s.lengths_at, 160).tobytes()
    assert table == lengths.table([len(e) for e in arr])
    assert f.offset - s.offset >= s.lengths_at + 160
    assert list(_read(writer, s)) == list(arr) and np.array_equal(_read(writer, f), np.ones(3))
    (one,) = writer.write_all([("S", arr, (40,), None)])      # a slot of its own
    assert one.lengths_at and list(_read(writer, one)) == list(arr)
    assert writer.write("S", _strings(5), (5,), None).lengths_at == 0     # few: no table


def test_an_echoed_input_passes_its_table_on(writer):
    arr = _strings(40)
    data = b"".join(len(e).to_bytes(4, "little") + e for e in arr)
    table = lengths.table([len(e) for e in arr])
    parsed_arr = D.deserialize_bytes(data, 40, table)
    ref = writer.write("S", parsed_arr, (40,), None)
    assert writer._cache.buffer(ref.region, ref.offset, ref.lengths_at + 160).tobytes() \
        [ref.lengths_at:] == table


def test_client_regions_and_batches_get_the_payload_only(writer):
    client = ArenaPool(uuid.uuid4().hex, "c", 4096)
    try:
        arr = _strings(40)
        need = D.serialized_size(arr)
        spot = client.alloc(need)
        dest = TensorRef("S", "BYTES", [40], spot.region, spot.offset, need, kind=CLIENT_SHM)
        (ref,) = writer.write_all([("S", arr, (40,), dest)])
        assert ref.lengths_at == 0 and ref.nbytes == need
        batch = writer.write_batch("S", np.stack([arr, arr]), [1, 1], [(1, 40), (1, 40)],
                                   [None, None])
        assert [r.lengths_at for r in batch] == [0, 0]
    finally:
        client.close()
