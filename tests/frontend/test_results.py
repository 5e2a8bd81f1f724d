"""frontend/results.py: output views over the worker's slots, and a BYTES output's
length table (shm/lengths.py) handed on as a parsing hint."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.frontend.test_validate import version
from tritond import messages
from tritond.frontend.http.tensors import bytes_to_json
from tritond.frontend.results import Results
from tritond.frontend.types import InferRequest
from tritond.shm import lengths
from tritond.shm.arena import ArenaPool
from tritond.shm.views import SegmentCache


class _Client:
    def releaser(self, resp):
        return None


@pytest.fixture
def world():
    pool, cache = ArenaPool(uuid.uuid4().hex, "w", 1 << 16), SegmentCache(writable=False)
    yield pool, cache
    cache.close()
    pool.close()


def _staged(pool, items, table):
    payload = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    at = (len(payload) + 3) & ~3
    slot = pool.alloc(at + len(table))
    slot.view[:len(payload)] = payload
    slot.view[at:] = table
    return messages.TensorRef("OUT", "BYTES", [len(items)], slot.region, slot.offset,
                              len(payload), lengths_at=at)


def test_the_workers_table_comes_with_the_output(world):
    pool, cache = world
    items = [b"out-%d" % i for i in range(40)]
    table = lengths.table([len(b) for b in items])
    ref = _staged(pool, items, table)
    result = Results(_Client(), cache).result(
        version("strings"), InferRequest("strings"), messages.Response(1, outputs=[ref]))
    (out,) = result.outputs
    assert bytes(out.lengths) == table and list(out.as_numpy()) == items
    assert bytes_to_json("OUT", "BYTES", [40], out.data, out.lengths).__class__.__name__ == "Raw"
    plain = messages.TensorRef("OUT", "BYTES", [40], ref.region, ref.offset, ref.nbytes)
    (bare,) = Results(_Client(), cache).result(
        version("strings"), InferRequest("strings"), messages.Response(1, outputs=[plain])).outputs
    assert bare.lengths is None and list(bare.as_numpy()) == items


def test_a_table_past_the_segment_is_dropped(world):
    pool, cache = world
    items = [b"out-%d" % i for i in range(40)]
    ref = _staged(pool, items, lengths.table([len(b) for b in items]))
    far = messages.TensorRef("OUT", "BYTES", [40], ref.region, ref.offset, ref.nbytes,
                             lengths_at=1 << 20)
    (out,) = Results(_Client(), cache).result(
        version("strings"), InferRequest("strings"), messages.Response(1, outputs=[far])).outputs
    assert out.lengths is None and list(out.as_numpy()) == items


def test_bytes_to_json_is_the_same_with_any_table():
    items = [b"e%d" % i for i in range(40)]
    raw = b"".join(len(b).to_bytes(4, "little") + b for b in items)
    right = lengths.table([len(b) for b in items])
    wrong = lengths.table([len(b) + 1 for b in items])
    want = bytes_to_json("o", "BYTES", [40], raw)
    for table in (right, wrong, None):
        assert bytes(bytes_to_json("o", "BYTES", [40], raw, table)) == bytes(want)
    assert np.frombuffer(right, "<u4").tolist() == [len(b) for b in items]
