"""BLS inputs: the model's own shm tensors pass by reference, others are staged once."""
from __future__ import annotations

import threading

import numpy as np

from tritond import messages
from tritond.shm import lengths
from tritond.workers.python import bls_call
from tritond.workers.python.tensor import Tensor


class _Client:
    def __init__(self):
        self.staged = []
        self.tables = []

    def stage(self, name, dtype, shape, data, nbytes, slots, lengths=None):
        self.staged.append((name, dtype, shape, bytes(data), nbytes))
        self.tables.append(lengths)
        slots.append(("/arena", 0))
        return messages.TensorRef(name, dtype, shape, "/arena", 0, nbytes)


class _Channel:
    def __init__(self):
        self.lock = threading.RLock()
        self.client = _Client()


def test_a_received_tensor_passes_by_reference():
    ch = _Channel()
    ref = messages.TensorRef("INPUT0", "FP32", [4], "/frontend-arena", 128, 16)
    t = Tensor("INPUT0", np.zeros(4, np.float32))
    t._ref = ref
    out = bls_call._input(t, ch, [])
    assert (out.region, out.offset, out.nbytes, out.name) == ("/frontend-arena", 128, 16, "INPUT0")
    assert ch.client.staged == []
    t._ref = messages.TensorRef("S", "BYTES", [40], "/frontend-arena", 128, 400, lengths_at=400)
    t2 = Tensor("S", np.array([b"123456"] * 40, dtype=object))
    t2._ref = t._ref
    assert bls_call._input(t2, ch, []).lengths_at == 400     # its length table goes along


def test_other_tensors_are_copied_once_into_the_arena():
    ch = _Channel()
    slots = []
    out = bls_call._input(Tensor("X", np.arange(3, dtype=np.int32)), ch, slots)
    assert ch.client.staged == [("X", "INT32", [3], np.arange(3, dtype=np.int32).tobytes(), 12)]
    assert slots == [("/arena", 0)] and out.region == "/arena"
    bls_call._input(Tensor("S", np.array([b"ab", b"c"], dtype=object)), ch, slots)
    assert ch.client.staged[1][:3] == ("S", "BYTES", [2])
    assert ch.client.staged[1][3] == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert ch.client.tables == [None, None]          # two elements: the callee just walks
    many = np.array([b"e%d" % i for i in range(40)], dtype=object)
    bls_call._input(Tensor("M", many), ch, [])       # many: their length table goes along
    assert ch.client.tables[-1] == lengths.table([len(e) for e in many])
    ch.client.staged.pop()
    reshaped = Tensor("INPUT0", np.zeros((2, 2), np.float32))
    reshaped._ref = messages.TensorRef("INPUT0", "FP32", [4], "/frontend-arena", 0, 16)
    bls_call._input(reshaped, ch, slots)                 # shape differs from its ref: staged
    assert ch.client.staged[2][2] == [2, 2]
