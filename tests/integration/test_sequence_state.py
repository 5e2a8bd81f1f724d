"""Implicit state in shared memory (issue 11, item 2) and sequences through ensembles
(item 3), through real processes and the real tritonclient.

Each instance of a model with fixed-size states holds one ``<worker>-state`` segment
(two buffers per slot, workers/sequence_state.py): it exists while the instance
lives, does not grow with the sequences served, goes with a crashed worker (the
parent unlinks what a dead child owned) and with the server."""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.seq_repo import write, write_ensemble
from tests.integration.test_sequences import infer
from tests.server import Server, segments_of


def state_segments(srv) -> dict[str, int]:
    """{segment name: size} of the server's slot-state segments."""
    return {n: os.stat(f"/dev/shm/{n}").st_size for n in segments_of(srv.proc.pid)
            if n.endswith("-state")}


def owner(name: str) -> int:
    return int(name.split("-")[2])           # tritond-<server id>-<pid>-<tag>


def run_sequences(url, model, count, first_id, initial=0):
    def one(i):
        c = httpclient.InferenceServerClient(url)
        values = [i % 7, 1, 2, 3]
        got = [infer(c, model, v, first_id + i, k == 0, k == len(values) - 1)
               for k, v in enumerate(values)]
        assert got == list(initial + np.cumsum(values)), (model, i, got)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))


def test_state_segments_one_per_instance_steady_released_on_crash_and_stop(tmp_path):
    srv = Server([write(tmp_path)])
    pid = srv.proc.pid
    try:
        before = state_segments(srv)
        workers = _workers(srv)            # every instance of a state model has one, no other
        stateful = {p for p, m in workers.items() if m in STATEFUL}
        assert sorted(map(owner, before)) == sorted(stateful) and stateful
        assert all(size >= 4 * 2 * 4 for size in before.values())   # 4 slots x 2 x int32
        run_sequences(srv.url, "seq_state_py", 24, 100)
        run_sequences(srv.url, "seq_state_onnx", 24, 200, initial=100)
        assert state_segments(srv) == before                # nothing grew, nothing leaked
        # A crash: the worker's state segment goes with it; its restart makes a new one.
        client = httpclient.InferenceServerClient(srv.url)
        assert infer(client, "seq_state_py", 1, 300, start=True) == 1
        py_pid = next(p for p, m in workers.items() if m == "seq_state_py")
        os.kill(py_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = state_segments(srv)
            if len(now) == len(before) and py_pid not in map(owner, now):
                break
            time.sleep(0.2)
        now = state_segments(srv)
        assert py_pid not in map(owner, now) and len(now) == len(before), now
        while time.monotonic() < deadline:     # the restarted instance serves a new START
            try:
                assert infer(client, "seq_state_py", 5, 300, start=True) == 5
                break
            except InferenceServerException:
                time.sleep(0.2)
        assert infer(client, "seq_state_py", 5, 300, end=True) == 10
    finally:
        assert srv.stop() == 0
    assert segments_of(pid) == []               # every segment of the server is gone


STATEFUL = ("seq_state_py", "seq_state_onnx")


def _workers(srv) -> dict[int, str]:
    """{pid: model} of the server's workers of STATEFUL models, {pid: instance} of the others
    (a worker's title names its instance)."""
    out = {}
    for child in srv.children():
        try:
            cmd = open(f"/proc/{child}/cmdline", "rb").read().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if "tritond: worker " in cmd:
            instance = cmd.split("tritond: worker ", 1)[1].split()[0]
            out[child] = next((m for m in STATEFUL if instance.startswith(m + "_")), instance)
    return out


@pytest.fixture(scope="module")
def ens(tmp_path_factory):
    server = Server([write_ensemble(write(tmp_path_factory.mktemp("ens")))])
    yield server
    server.stop()


def ens_infer(client, model, value, cid, start=False, end=False, mod=httpclient):
    inp = mod.InferInput("IN", [1, 1], "INT32")
    inp.set_data_from_numpy(np.full((1, 1), value, np.int32))
    result = client.infer(model, [inp], sequence_id=cid, sequence_start=start,
                          sequence_end=end)
    return int(result.as_numpy("OUT")[0][0])


def test_ensemble_passes_sequence_id_and_flags_to_a_stateful_step(ens):
    """The state model after ``double`` accumulates 2*x per sequence, kept apart."""
    c = httpclient.InferenceServerClient(ens.url)
    g = grpcclient.InferenceServerClient(ens.grpc_url)
    assert ens_infer(c, "ens_seq", 1, 40, start=True) == 2
    assert ens_infer(g, "ens_seq", 10, 41, start=True, mod=grpcclient) == 20
    assert ens_infer(c, "ens_seq", 2, 40) == 6
    assert ens_infer(g, "ens_seq", 1, 41, end=True, mod=grpcclient) == 22
    assert ens_infer(c, "ens_seq", 3, 40, end=True) == 12
    assert ens_infer(c, "ens_seq", 3, 40, start=True, end=True) == 6   # START resets


def test_ensemble_passes_end_and_corrid_to_control_inputs(ens):
    """seq_direct adds CORRID at END: the ensemble's sequence id reached the control input."""
    c = httpclient.InferenceServerClient(ens.url)
    assert ens_infer(c, "ens_direct", 1, 77, start=True) == 2
    assert ens_infer(c, "ens_direct", 2, 77) == 6
    assert ens_infer(c, "ens_direct", 1, 77, end=True) == 8 + 77


def test_ensemble_sequence_errors_are_the_sequence_models(ens):
    c = httpclient.InferenceServerClient(ens.url)
    with pytest.raises(InferenceServerException) as err:
        ens_infer(c, "ens_seq", 1, 4242)                # no START
    assert "must specify the START flag on the first request of the sequence" in \
        err.value.message()
    with pytest.raises(InferenceServerException) as err:
        ens_infer(c, "ens_seq", 1, 0, start=True)        # no correlation id
    assert "must specify a non-zero or non-empty correlation ID" in err.value.message()


def test_a_step_checks_the_type_of_the_correlation_id_as_triton(ens):
    """Triton normalizes each step request, so its ValidateCorrelationId applies to a
    step's model: a string id reaching seq_direct (CORRID TYPE_UINT64) through an ensemble
    fails with Triton's text instead of running as id 0."""
    c = httpclient.InferenceServerClient(ens.url)
    with pytest.raises(InferenceServerException) as err:
        ens_infer(c, "ens_direct", 1, "77", start=True)
    assert "sequence batching control 'CORRID' data-type is 'BYTES', but model 'seq_direct' " \
           "expects 'UINT64'" in err.value.message()
    assert ens_infer(c, "ens_seq", 1, "s-77", start=True, end=True) == 2   # no CORRID: any id
