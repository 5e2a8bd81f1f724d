"""One turn of the worker's loop (``WorkerProc._handle``): order and one frame per peer.

The real WorkerProc and SyncEndpoint in this process; the frontend and the
scheduler are plain listening sockets, so the test sees the frames on the wire.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Union

import numpy as np
import pytest

from tritond import channel, messages
from tritond.endpoint import SyncEndpoint
from tritond.framing import FrameBuffer
from tritond.options import Options
from tritond.procutil import Bootstrap
from tritond.workers import cancel
from tritond.workers import main as worker_main
from tritond.workers.python import bls, pb_utils
from tritond.workers.main import INBOX, WorkerProc

from tests.specs import spec_from_dict

from . import models

pytestmark = pytest.mark.timeout(60)


class Wire:
    """A listening socket at a peer's address that counts the frames it is sent."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(addr)
        self.sock.listen(4)
        self.sock.settimeout(5)
        self.conn = None
        self.frames: list[list] = []
        self._fb = FrameBuffer()
        self._decode = messages.decoder(Union[messages.Response, messages.Executed]).decode

    def read(self, want: int) -> list:
        """Frames until ``want`` messages came (each frame: its list of messages)."""
        if self.conn is None:
            self.conn, _ = self.sock.accept()
            self.conn.settimeout(5)
        while sum(len(f) for f in self.frames) < want:
            data = self.conn.recv(65536)
            assert data, "the worker closed the connection"
            self.frames += [self._decode(p) for p in self._fb.feed(data)]
        return self.frames

    def close(self) -> None:
        for s in (self.conn, self.sock):
            if s is not None:
                s.close()


@pytest.fixture
def turn(repo, frontend, monkeypatch):
    # A WorkerProc installs process-wide state a worker process owns alone: put it back.
    monkeypatch.setattr(cancel, "_watch", None)
    monkeypatch.setattr(bls, "_config", None)
    monkeypatch.setattr(pb_utils, "_model_dir", None)
    sid = frontend.server_id
    boot = Bootstrap(role="worker", name="w1", address=channel.address(sid, "w1"),
                     parent=channel.address(sid, "parent"), server_id=sid,
                     parent_pid=os.getpid())
    parent = SyncEndpoint(boot.parent, messages.TO_PARENT)
    fe, sched = Wire(channel.address(sid, "frontend-0")), Wire(channel.address(sid, "scheduler"))
    ep = SyncEndpoint(boot.address, INBOX)
    proc = WorkerProc(boot, ep, logging.getLogger("test"))
    proc._setup(messages.Setup(options=Options(output_arena_byte_size=1 << 20), server_id=sid,
                               parent=parent.addr, scheduler=sched.addr, frontends=[fe.addr]))
    model = models.python_model(repo, "add_sub_py", models.TRITON_ADD_SUB)
    proc._load(messages.Load(model="add_sub_py", version=1, instance="add_sub_py_0_0",
                             kind="CPU", device_id=0, spec=spec_from_dict(models.ADD_SUB_CONFIG),
                             model_dir=str(model), repository=str(repo)))
    assert proc.runner is not None

    def execute(batch_id: int, x: np.ndarray, releases=()) -> messages.Execute:
        req = messages.Request(rid=batch_id, frontend=fe.addr, model="add_sub_py", version=1,
                               inputs=[frontend.stage("INPUT0", x), frontend.stage("INPUT1", x)])
        return messages.Execute(batch_id, [req], list(releases))

    yield proc, execute, fe, sched
    proc._close()
    ep.close()
    parent.close()
    fe.close()
    sched.close()


def test_a_turns_quick_executes_answer_in_one_frame_per_peer(turn, monkeypatch):
    proc, execute, fe, sched = turn
    # Every batch counts as quick: only the turn's last Execute flushes.
    monkeypatch.setattr(worker_main, "FLUSH_AFTER_S", float("inf"))
    x = np.arange(4, dtype=np.float32)
    proc._handle([execute(1, x), execute(2, x + 1), execute(3, x + 2)])
    assert [[m.rid for m in f] for f in fe.read(3)] == [[1, 2, 3]]
    assert [[m.batch_id for m in f] for f in sched.read(3)] == [[1, 2, 3]]
    for resp, base in zip(fe.frames[0], (x, x + 1, x + 2)):
        assert resp.error is None
        out = {ref.name: proc.cache.array(ref) for ref in resp.outputs}
        np.testing.assert_array_equal(out["OUTPUT0"], base + base)


def test_a_slow_execute_answers_at_once(turn, monkeypatch):
    proc, execute, fe, sched = turn
    monkeypatch.setattr(worker_main, "FLUSH_AFTER_S", -1.0)     # every batch is slow
    x = np.ones(4, dtype=np.float32)
    proc._handle([execute(1, x), execute(2, x)])
    assert [[m.rid for m in f] for f in fe.read(2)] == [[1], [2]]
    assert [[m.batch_id for m in f] for f in sched.read(2)] == [[1], [2]]


def test_releases_of_the_turn_come_before_its_executions(turn):
    proc, execute, fe, sched = turn
    x = np.ones(4, dtype=np.float32)
    proc._handle([execute(1, x)])
    first = fe.read(1)[0][0]
    held = [(ref.region, ref.offset) for ref in first.outputs]
    assert len(held) == 2 and proc.writer.live_slots == 1      # both outputs in one slot
    # One output comes back in a Release *behind* the Execute, the other on the Execute
    # itself: the slot is free before the Execute runs, so its outputs take the same bytes
    # (applied after it, they would have had to go elsewhere in the arena).
    proc._handle([execute(2, x, releases=held[1:]), messages.Release("fe", held[:1])])
    second = fe.read(2)[1][0]
    assert sorted((r.region, r.offset) for r in second.outputs) == sorted(held)
    assert proc.writer.live_slots == 1


def test_lifecycle_messages_run_in_their_order(turn):
    proc, execute, fe, sched = turn
    x = np.ones(4, dtype=np.float32)
    # Shutdown first: the Execute behind it in the same turn never runs.
    proc._handle([messages.Shutdown("test"), execute(1, x)])
    assert not proc.running and proc.runner is not None
    assert fe.conn is None and sched.conn is None     # nothing was sent to either


def test_an_answer_to_a_gone_caller_is_dropped_and_its_slot_comes_back(turn, frontend):
    """The requester died (a BLS caller killed while this worker ran its call): the
    worker goes on, the scheduler still hears Executed, and the output slot nobody will
    release returns to the arena at once."""
    proc, execute, fe, sched = turn
    x = np.ones(4, dtype=np.float32)
    gone = channel.address(frontend.server_id, "w9-bls")        # nobody listens there
    ex = execute(1, x)
    ex.requests[0].frontend = gone
    proc._handle([ex])                   # raised ConnectionRefusedError out of the loop before
    assert [m.batch_id for f in sched.read(1) for m in f] == [1]
    assert proc.writer.live_slots == 0
    proc._handle([execute(2, x)])        # and the next request is answered as usual
    assert [m.rid for f in fe.read(1) for m in f] == [2]
