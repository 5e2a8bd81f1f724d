"""Iterative sequences (issue 11): a model reschedules a request (Triton's
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE) and it runs again in its sequence slot,
through a real tritond and the real tritonclient; Triton's errors for misuse."""
from __future__ import annotations

import os
import queue
import re
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.iterative_repo import write
from tests.server import Server, segments_of

NOT_CONFIGURED = ("Request is released with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE, while the "
                  "model is not configured to handle such a flag.")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # tests leave sequences live (no END): a stop would wait the whole exit timeout for them
    srv = Server([write(tmp_path_factory.mktemp("iterative"))], "--exit-timeout-secs=2")
    yield srv
    srv.stop()


class Stream:
    """One gRPC stream; ``countdown`` collects one request's responses up to its final one."""

    def __init__(self, srv):
        self.client = grpcclient.InferenceServerClient(srv.grpc_url)
        self.q: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.q.put((result, error)))

    def send(self, model, n, batched=True, **kwargs):
        shape = [1, 1] if batched else [1]
        inp = grpcclient.InferInput("IN", shape, "INT32")
        inp.set_data_from_numpy(np.full(shape, n, np.int32))
        self.client.async_stream_infer(model, [inp], **kwargs)

    def get(self, timeout=30):
        result, error = self.q.get(timeout=timeout)
        if error is not None:
            return error
        return tuple(int(result.as_numpy(k).flat[0]) for k in ("OUT", "CORRID", "STARTED"))

    def close(self, cancel=False):
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def _countdown(stream, n):
    got = [stream.get() for _ in range(n)]
    assert [g[0] for g in got] == list(range(n - 1, -1, -1)), got
    assert [g[2] for g in got] == [1] + [0] * (n - 1), got     # START on the first step only
    assert len({g[1] for g in got}) == 1 and got[0][1] != 0, got   # one sequence throughout
    return got[0][1]


def test_an_iterative_request_streams_one_response_per_reschedule(served):
    s = Stream(served)
    try:
        s.send("iterative_sequence", 3)
        _countdown(s, 3)
        s.send("iterative_sequence", 1)              # the next request: a sequence of its own
        assert s.get()[0] == 0
    finally:
        s.close()


def test_more_iterative_sequences_than_slots_interleave_with_an_explicit_one(served):
    streams = [Stream(served) for _ in range(6)]     # 4 slots: two wait in the backlog
    try:
        counts = [4, 6, 5, 3, 7, 2]
        for s, n in zip(streams, counts):
            s.send("iterative_sequence", n)
        explicit = Stream(served)
        explicit.send("iterative_sequence", 3, sequence_id=777, sequence_start=True)
        corrids = [_countdown(s, n) for s, n in zip(streams, counts)]
        assert _countdown(explicit, 3) == 777          # a client's id is kept
        assert len(set(corrids)) == len(corrids) and 777 not in corrids
        explicit.close()
    finally:
        for s in streams:
            s.close()


def _addsub(model):
    client = httpclient.InferenceServerClient(model[0].url)
    a = np.random.randn(16).astype(np.float32)
    b = np.random.randn(16).astype(np.float32)
    inputs = [httpclient.InferInput("INPUT0", [16], "FP32"),
              httpclient.InferInput("INPUT1", [16], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return a, b, client.infer(model[1], inputs)


def test_a_non_decoupled_model_answers_after_its_reschedule(served):
    for _ in range(2):
        a, b, result = _addsub((served, "reschedule_addsub"))
        assert np.array_equal(result.as_numpy("OUTPUT0"), a + b)
        assert np.array_equal(result.as_numpy("OUTPUT1"), a - b)
        assert result.get_response()["parameters"]["executions"] == 2


def test_a_response_for_a_rescheduled_request_fails_the_batch(served):
    with pytest.raises(InferenceServerException) as err:
        _addsub((served, "reschedule_addsub_bad"))
    assert "Expected a None object in the execute function return list for reschduled " \
        "request, found type" in err.value.message()
    _addsub((served, "reschedule_addsub"))          # the server goes on


@pytest.mark.parametrize("model,kwargs", [
    ("reschedule_plain", {}),
    ("reschedule_direct", {"sequence_id": 5, "sequence_start": True})])
def test_rescheduling_without_iterative_sequence_is_refused(served, model, kwargs):
    s = Stream(served)
    try:
        s.send(model, 3, batched=model != "reschedule_plain", **kwargs)
        assert s.get()[0] == 2                        # the step's own response went out
        err = s.get()
        assert isinstance(err, InferenceServerException), err
        assert NOT_CONFIGURED in err.message()     # (a stream's error carries no status)
    finally:
        s.close()


def test_a_sequence_reaped_while_running_cannot_be_rescheduled(served):
    s = Stream(served)
    try:
        s.send("iterative_idle", 1002)                # 2 steps of 0.6 s, idle limit 0.2 s
        assert s.get()[0] == 1
        err = s.get()
        assert isinstance(err, InferenceServerException), err
        assert "must specify the START flag on the first request of the sequence" in err.message()
        s.send("iterative_idle", 1)
        assert s.get()[0] == 0
    finally:
        s.close()


def test_a_model_error_mid_way_ends_the_sequence_and_frees_its_slot(served):
    s = Stream(served)
    try:
        s.send("iterative_one", 3003)                  # raises at its second step
        assert s.get()[0] == 2
        err = s.get()
        assert isinstance(err, InferenceServerException), err
        assert re.search(r"step 2 of sequence \d+ failed", err.message()), err.message()
        s.send("iterative_one", 2)                     # one slot: it was freed
        assert [s.get()[0] for _ in range(2)] == [1, 0]
    finally:
        s.close()


def test_a_cancel_mid_way_ends_the_sequence_and_frees_its_slot(served):
    s = Stream(served)
    s.send("iterative_one", 1900)                      # 900 steps of 0.05 s
    assert [s.get()[0] for _ in range(2)] == [899, 898]
    s.close(cancel=True)
    other = Stream(served)
    try:
        other.send("iterative_one", 2)                 # one slot: it was freed
        assert [other.get(timeout=20)[0] for _ in range(2)] == [1, 0]
    finally:
        other.close()


def _workers_of(parent: int, model: str) -> list[int]:
    """Pids of the server's worker processes of ``model`` (their process titles)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            title = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and f"worker {model}_" in title:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def test_a_worker_crash_mid_way_fails_unavailable_and_leaves_no_shm(tmp_path):
    srv = Server([write(tmp_path, names=["iterative_one"])])
    try:
        s = Stream(srv)
        # the worker's pid from the process table before the request: on a loaded host it
        # can be killed and its segments reaped before the first answer is read
        before = set(_workers_of(srv.proc.pid, "iterative_one"))
        assert before
        s.send("iterative_one", 2003)                   # killed at its second step
        assert s.get()[0] == 2
        err = s.get()
        assert isinstance(err, InferenceServerException), err
        assert "killed by signal SIGKILL while" in err.message(), err.message()
        deadline = time.monotonic() + 20
        dead = []
        while not dead and time.monotonic() < deadline:     # reaped by the parent
            dead = [pid for pid in before if not _alive(pid)]
            time.sleep(0.05)
        assert dead                                     # the worker's pid owned segments
        while time.monotonic() < deadline and any(
                int(n.split("-")[2]) in dead for n in segments_of(srv.proc.pid)):
            time.sleep(0.1)
        assert not [n for n in segments_of(srv.proc.pid) if int(n.split("-")[2]) in dead]
        s.close()
        srv.wait()                                      # the worker was restarted
        s = Stream(srv)
        s.send("iterative_one", 2)
        assert [s.get()[0] for _ in range(2)] == [1, 0]
        s.close()
    finally:
        srv.stop()
