"""A real worker process (spawn), driven by this test playing parent, scheduler and frontend."""
from __future__ import annotations

import json
import multiprocessing
import os
import time

import numpy as np
import pytest

from tritond import channel, messages
from tritond.endpoint import SyncEndpoint
from tritond.errors import Code
from tritond.options import Options
from tritond.procutil import Bootstrap
from tritond.workers.main import main

from tests.specs import spec_from_dict

from . import models
from .helpers import Frontend, shm_leftovers

pytestmark = pytest.mark.timeout(60)


class Peers:
    """SyncEndpoints for the parent, scheduler and frontend roles of one server id."""

    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        self.parent = SyncEndpoint(channel.address(server_id, "parent"), messages.TO_PARENT)
        self.scheduler = SyncEndpoint(channel.address(server_id, "scheduler"),
                                              messages.TO_SCHEDULER)
        self.frontend = SyncEndpoint(channel.address(server_id, "frontend-0"),
                                             messages.TO_FRONTEND)

    def close(self) -> None:
        for ep in (self.parent, self.scheduler, self.frontend):
            ep.close()


def expect(endpoint: SyncEndpoint, kind, timeout: float = 30.0):
    """Wait for exactly one message of ``kind`` (anything else fails the test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msgs = endpoint.recv(timeout=0.5)
        if msgs:
            assert len(msgs) == 1 and isinstance(msgs[0], kind), msgs
            return msgs[0]
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


@pytest.fixture
def world():
    fe = Frontend()
    peers = Peers(fe.server_id)
    ctx = multiprocessing.get_context("spawn")
    procs = []

    def start(name: str = "w1"):
        boot = Bootstrap(role="worker", name=name, address=channel.address(fe.server_id, name),
                         parent=peers.parent.addr, server_id=fe.server_id, parent_pid=os.getpid())
        proc = ctx.Process(target=main, args=(boot,), daemon=True)
        proc.start()
        procs.append(proc)
        hello = expect(peers.parent, messages.Hello)
        assert (hello.role, hello.name, hello.pid, hello.address) == \
            ("worker", name, proc.pid, boot.address)
        peers.parent.send_now(boot.address, [messages.Setup(
            options=Options(output_arena_byte_size=1 << 20), server_id=fe.server_id,
            parent=peers.parent.addr, scheduler=peers.scheduler.addr,
            frontends=[peers.frontend.addr])])
        return boot, proc

    yield fe, peers, start
    for proc in procs:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    peers.close()
    fe.close()


def load(peers, boot, model_dir, config: dict):
    peers.parent.send_now(boot.address, [messages.Load(
        model=model_dir.name, version=1, instance=f"{model_dir.name}_0_0", kind="CPU",
        device_id=0, spec=spec_from_dict(config), model_dir=str(model_dir),
        repository=str(model_dir.parent), auto_complete=True)])


def test_worker_lifecycle_and_data_path(repo, world):
    fe, peers, start = world
    boot, proc = start()
    load(peers, boot, models.add_sub(repo), {"name": "add_sub", "backend": "onnxruntime"})
    loaded = expect(peers.parent, messages.Loaded)
    assert json.loads(loaded.config)["max_batch_size"] == 4

    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), 3, dtype=np.int32)
    reqs = [messages.Request(rid=i, frontend=peers.frontend.addr, model="add_sub", version=1,
                             inputs=[fe.stage("INPUT0", a), fe.stage("INPUT1", b)], batch=2)
            for i in (1, 2)]
    peers.scheduler.send_now(boot.address, [messages.Execute(batch_id=9, requests=reqs)])

    responses = []
    while len(responses) < 2:
        responses += peers.frontend.recv(timeout=30)
    executed = expect(peers.scheduler, messages.Executed)
    assert (executed.instance, executed.batch_id, executed.failed) == (boot.address, 9, [])
    assert executed.stats.batch_size == 4
    for resp in responses:
        assert resp.error is None and resp.instance == boot.address
        out = {ref.name: fe.read(ref) for ref in resp.outputs}
        np.testing.assert_array_equal(out["OUTPUT0"], a + b)
        np.testing.assert_array_equal(out["OUTPUT1"], a - b)
    worker_segments = {ref.region for resp in responses for ref in resp.outputs}
    assert all(f"-{proc.pid}-w1" in name for name in worker_segments)

    # The frontend releases straight to the worker; the worker keeps serving.
    slots = [(ref.region, ref.offset) for resp in responses for ref in resp.outputs]
    peers.frontend.send_now(boot.address, [messages.Release(boot.address, slots)])
    peers.scheduler.send_now(boot.address, [messages.Execute(batch_id=10, requests=[
        messages.Request(rid=3, frontend=peers.frontend.addr, model="add_sub", version=1,
                         inputs=[fe.stage("INPUT0", a[:1]), fe.stage("INPUT1", b[:1])],
                         outputs=[messages.OutputSpec("OUTPUT1")], batch=1)])])
    resp = expect(peers.frontend, messages.Response)
    assert [r.name for r in resp.outputs] == ["OUTPUT1"]
    assert expect(peers.scheduler, messages.Executed).batch_id == 10

    peers.parent.send_now(boot.address, [messages.Shutdown("test")])
    assert expect(peers.parent, messages.Stopped).name == "w1"
    proc.join(10)
    assert proc.exitcode == 0
    fe.close()
    assert shm_leftovers(fe.server_id) == []


def test_load_failure_is_reported_and_the_worker_exits(repo, world):
    fe, peers, start = world
    boot, proc = start()
    model = models.add_sub(repo)
    load(peers, boot, model, {"name": "add_sub", "backend": "onnxruntime",
                              "default_model_filename": "missing.onnx"})
    failed = expect(peers.parent, messages.LoadFailed)
    assert failed.instance == "add_sub_0_0" and failed.error.code == Code.NOT_FOUND
    assert str(model / "1" / "missing.onnx") in failed.error.message
    proc.join(10)
    assert proc.exitcode == 0


def test_unknown_backend_load_fails_unsupported(repo, world):
    fe, peers, start = world
    boot, proc = start()
    load(peers, boot, models.add_sub(repo), {"name": "add_sub", "backend": "tensorflow"})
    failed = expect(peers.parent, messages.LoadFailed)
    assert failed.error.code == Code.UNSUPPORTED and "tensorflow" in failed.error.message
    proc.join(10)
    assert proc.exitcode == 0


def test_python_model_in_a_worker_process(repo, world):
    fe, peers, start = world
    boot, proc = start()
    model = models.python_model(repo, "add_sub_py", models.TRITON_ADD_SUB)
    load(peers, boot, model, models.ADD_SUB_CONFIG)
    expect(peers.parent, messages.Loaded)
    x = np.array([1, 2, 3, 4], dtype=np.float32)
    peers.scheduler.send_now(boot.address, [messages.Execute(batch_id=1, requests=[
        messages.Request(rid=5, frontend=peers.frontend.addr, model="add_sub_py", version=1,
                         inputs=[fe.stage("INPUT0", x), fe.stage("INPUT1", x)])])])
    resp = expect(peers.frontend, messages.Response)
    out = {ref.name: fe.read(ref) for ref in resp.outputs}
    np.testing.assert_array_equal(out["OUTPUT0"], x + x)
    np.testing.assert_array_equal(out["OUTPUT1"], x - x)
    expect(peers.scheduler, messages.Executed)
    peers.parent.send_now(boot.address, [messages.Shutdown("test")])
    expect(peers.parent, messages.Stopped)
    proc.join(10)
    assert proc.exitcode == 0
    assert shm_leftovers(fe.server_id) == [n for n in shm_leftovers(fe.server_id) if "-fe" in n]


def test_worker_answers_unknown_and_keeps_the_good_message(world):
    import msgspec

    import socket

    _, peers, start = world
    boot, proc = start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:   # a frame over the limit
        sock.connect(boot.address)
        sock.sendall(b"\xff\xff\xff\xff")
        assert sock.recv(1) == b""        # that connection is cut off; the worker lives on
    garbage = msgspec.Raw(msgspec.msgpack.encode([999, "junk"]))
    wrong = messages.Request(rid=1, frontend=peers.frontend.addr, model="m", version=1, inputs=[])
    peers.scheduler.send_now(boot.address, [garbage, wrong, messages.Shutdown("test")])
    got: list = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        got += peers.frontend.recv(timeout=0.2)
    details = sorted(m.detail for m in got if type(m) is messages.Unknown)
    # the garbage's sender is the connection's: the Request named it
    assert len(details) == 2 and details[0].startswith("undecodable message")
    assert details[1] == "unexpected Request message for the w1 process"
    assert expect(peers.parent, messages.Stopped).name == boot.name   # the Shutdown ran
    proc.join(10)
    assert proc.exitcode == 0
