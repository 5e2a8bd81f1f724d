"""Ensembles and BLS through a real tritond and the real tritonclient."""
from __future__ import annotations

import concurrent.futures
import os
import re
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.pipeline_repo import write_repo
from tests.server import Server

A = np.array([1, 2, 3, 4], np.float32)
B = np.array([10, 20, 30, 40], np.float32)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server([write_repo(tmp_path_factory.mktemp("pipelines"))], "--strict-readiness=false",
                    "--allow-client-shm=true")
    yield server
    server.stop()


@pytest.fixture()
def client(srv):
    return httpclient.InferenceServerClient(srv.url, concurrency=16)


def _inputs(a, b, mod=httpclient):
    ins = [mod.InferInput("INPUT0", [4], "FP32"), mod.InferInput("INPUT1", [4], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    return ins


def _infer(client, model, a=A, b=B, outputs=None, parameters=None):
    outs = [httpclient.InferRequestedOutput(o) for o in outputs] if outputs else None
    return client.infer(model, _inputs(a, b), outputs=outs, parameters=parameters)


# ------------------------------------------------------------------ ensembles


def test_add_sub_chain(client):
    result = _infer(client, "chain")
    np.testing.assert_array_equal(result.as_numpy("OUT0"), 2 * A)   # (a+b) + (a-b)
    np.testing.assert_array_equal(result.as_numpy("OUT1"), 2 * B)   # (a+b) - (a-b)


def test_fan_out_fan_in_dag(client):
    result = _infer(client, "fanout")
    np.testing.assert_array_equal(result.as_numpy("OUT0"), 2 * A)
    np.testing.assert_array_equal(result.as_numpy("OUT1"), 2 * B)


def test_python_preprocessing_then_onnx(client):
    result = _infer(client, "pre_onnx")
    np.testing.assert_array_equal(result.as_numpy("OUT"), A + B)


def test_intermediate_tensors_are_read_where_the_previous_step_wrote_them(srv, client):
    from tests.server import segments_of

    where = client.infer("where_chain", _inputs(A, B)).as_numpy("WHERE")[0].decode()
    name = where.rsplit("/", 1)[-1]
    assert name in segments_of(srv.proc.pid), where       # one of the server's segments ...
    assert re.search(r"-w\d+$", name), where               # ... a worker's output arena


def test_ensemble_outputs_into_client_shared_memory(client):
    import tritonclient.utils.shared_memory as shm

    key = f"/pipes-{os.getpid()}"
    handle = shm.create_shared_memory_region("pipes_out", key, 16)
    try:
        client.register_system_shared_memory("pipes_out", key, 16)
        out = httpclient.InferRequestedOutput("OUT0")
        out.set_shared_memory("pipes_out", 16)
        result = client.infer("chain", _inputs(A, B), outputs=[out])
        assert "data" not in result.get_output("OUT0")      # written into the region
        np.testing.assert_array_equal(shm.get_contents_as_numpy(handle, np.float32, [4]), 2 * A)
    finally:
        client.unregister_system_shared_memory("pipes_out")
        shm.destroy_shared_memory_region(handle)


def test_requested_outputs_only(client):
    result = _infer(client, "chain", outputs=["OUT1"])
    assert result.as_numpy("OUT0") is None
    np.testing.assert_array_equal(result.as_numpy("OUT1"), 2 * B)


def test_many_concurrent_ensemble_requests_over_grpc(srv):
    client = grpcclient.InferenceServerClient(srv.grpc_url)

    def one(i):
        a = A + i
        r = client.infer("fanout" if i % 2 else "chain", _inputs(a, B, grpcclient))
        return i, r.as_numpy("OUT0"), r.as_numpy("OUT1")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for i, out0, out1 in pool.map(one, range(64)):
            np.testing.assert_array_equal(out0, 2 * (A + i))
            np.testing.assert_array_equal(out1, 2 * B)


def test_a_step_error_fails_the_request_with_its_message(client):
    a = A.copy()
    a[0] = -1
    with pytest.raises(InferenceServerException) as err:
        _infer(client, "chain", a=a)
    assert "add_sub refuses -1" in err.value.message()
    assert err.value.status() == "400"


def test_ensemble_metadata_readiness_and_statistics(client):
    assert client.is_model_ready("chain") and client.is_model_ready("fanout")
    meta = client.get_model_metadata("chain")
    assert [i["name"] for i in meta["inputs"]] == ["INPUT0", "INPUT1"]
    assert meta["platform"] == "ensemble"
    _infer(client, "chain")
    stats = client.get_inference_statistics("chain")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] >= 1


def test_invalid_ensembles_fail_at_load_naming_the_step(srv, client):
    # Triton's dependency graph refuses these before its model lifecycle sees them: no
    # version state (name-only index rows), the reason in the log (Status::AsString)
    rows = {r["name"]: r for r in client.get_model_repository_index()}
    names = ("bad_types", "needs_ghost", "needs_v2", "loop_a", "loop_b")
    assert [rows[n] for n in names] == [{"name": n} for n in names]
    assert not client.is_model_ready("bad_types")
    log = srv.output()
    for reason in (      # Triton's texts
        "in ensemble bad_types, ensemble tensor INPUT1: inconsistent data type: TYPE_INT32 is "
        "inferred from model bad_types while TYPE_FP32 is inferred from model add_sub",
        "ensemble needs_ghost contains models that are not available or ambiguous: ghost",
        "ensemble 'needs_v2' depends on 'add_sub' whose required version 2 is not loaded.",
        "circular dependency between ensembles: loop_a -> ... -> loop_b -> loop_a",
        "circular dependency between ensembles: loop_b -> ... -> loop_a -> loop_b",
    ):
        assert "Invalid argument: " + reason in log


# ------------------------------------------------------------------------ BLS


def test_bls_sync(client):
    result = _infer(client, "bls")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)


def test_bls_to_an_ensemble(client):
    result = _infer(client, "bls", parameters={"target": "chain"})
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * A)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), 2 * B)


def test_bls_passes_the_callers_input_by_reference(client):
    with pytest.raises(InferenceServerException) as err:
        _infer(client, "bls", parameters={"target": "where"})
    where = err.value.message().split("WHERE ", 1)[1]
    assert re.search(r"-in-\d+$", where), where              # the frontend's input arena


def test_bls_copies_a_client_shm_input_so_only_the_caller_maps_the_region(srv, client):
    import tritonclient.utils.shared_memory as shm
    from tests.integration.sched_repo import wait_for
    from tests.integration.test_client_shm import mapped_by

    key = f"/pipes-bls-{os.getpid()}"
    handle = shm.create_shared_memory_region("bls_in", key, 32)
    try:
        shm.set_shared_memory_region(handle, [A, B])
        client.register_system_shared_memory("bls_in", key, 32)
        ins = [httpclient.InferInput("INPUT0", [4], "FP32"),
               httpclient.InferInput("INPUT1", [4], "FP32")]
        ins[0].set_shared_memory("bls_in", 16)
        ins[1].set_shared_memory("bls_in", 16, offset=16)
        with pytest.raises(InferenceServerException) as err:
            client.infer("bls", ins, parameters={"target": "where"})
        where = err.value.message().split("WHERE ", 1)[1]
        assert key.lstrip("/") not in where and re.search(r"bls-\d+$|bls$", where), where
        result = client.infer("bls", ins)                 # add_sub through BLS
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
        client.unregister_system_shared_memory("bls_in")
        wait_for(lambda: mapped_by(srv, key) == [], 10, "every mapping dropped")
    finally:
        shm.destroy_shared_memory_region(handle)


def test_bls_errors_come_back_as_the_response_error(client):
    a = A.copy()
    a[0] = -1
    with pytest.raises(InferenceServerException) as err:
        _infer(client, "bls", a=a)
    assert "BLS call failed: add_sub refuses -1" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        _infer(client, "bls", parameters={"target": "ghost"})
    # core's GetModel: an unknown name is NOT_FOUND "... is not found" (no version in it)
    assert ("BLS call failed: Model ghost - Error when running inference: Failed for execute "
            "the inference request. Model 'ghost' is not ready.") in err.value.message()


def test_bls_async_calls_run_concurrently(client):
    a = A.copy()
    a[0] = -3                      # add_sub sleeps 0.3 s; it has 2 instances
    _infer(client, "bls_async", a=A, parameters={"n": 2})     # warm up
    start = time.monotonic()
    result = _infer(client, "bls_async", a=a, parameters={"n": 6})
    elapsed = time.monotonic() - start
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 6 * (a + B))
    assert elapsed < 1.6, f"6 calls of 0.3 s on 2 instances took {elapsed:.2f}s: not concurrent"


def test_many_bls_requests_in_flight(client):
    futures = [client.async_infer("bls", _inputs(A + i, B)) for i in range(24)]
    for i, fut in enumerate(futures):
        np.testing.assert_array_equal(fut.get_result().as_numpy("OUTPUT0"), A + i + B)


def test_a_cancelled_caller_cancels_its_bls_call(srv, client):
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)

    def counts():
        st = client.get_inference_statistics("add_sub")["model_stats"][0]["inference_stats"]
        return st["success"]["count"], st["fail"]["count"]
    ok0, fail0 = counts()
    slow = A.copy()
    slow[0] = -3                         # both add_sub instances busy for 0.3 s
    busy = [client.async_infer("add_sub", _inputs(slow, B)) for _ in range(2)]
    time.sleep(0.05)
    with pytest.raises(InferenceServerException) as err:
        grpc.infer("bls", _inputs(A, B, grpcclient), client_timeout=0.1)
    assert "Deadline" in str(err.value.status()) or "DEADLINE" in str(err.value.status())
    for fut in busy:
        fut.get_result()
    end = time.monotonic() + 5
    while counts() != (ok0 + 2, fail0 + 1) and time.monotonic() < end:
        time.sleep(0.05)
    assert counts() == (ok0 + 2, fail0 + 1)     # the BLS call never ran: it was cancelled


# ----------------------------------------------------------- crash (keep last)


def test_a_composing_worker_crash_fails_only_the_requests_in_that_step(srv, client):
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)

    def infer(model, a):
        return grpc.infer(model, _inputs(a, B, grpcclient))
    crash = A.copy()
    crash[0] = -2
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        bad = pool.submit(infer, "chain", crash)
        time.sleep(0.05)
        good = [pool.submit(infer, "fanout", A + i) for i in range(4)]
        with pytest.raises(InferenceServerException) as err:
            bad.result()
        for i, fut in enumerate(good):
            np.testing.assert_array_equal(fut.result().as_numpy("OUT0"), 2 * (A + i))
    assert "killed by signal SIGKILL" in err.value.message()
    assert err.value.status() == "StatusCode.UNAVAILABLE"
    end = time.monotonic() + 30
    while time.monotonic() < end:                  # restarted: the chain works again
        try:
            np.testing.assert_array_equal(_infer(client, "chain").as_numpy("OUT0"), 2 * A)
            break
        except InferenceServerException:
            time.sleep(0.2)
    else:
        raise AssertionError("chain did not recover after the crash")


# ------------------------------------------------- explicit mode, shm hygiene


def test_explicit_loading_unload_dependents_and_no_slot_left_behind(tmp_path):
    from tests.server import segments_of
    from tritond.shm.arena import is_oneoff

    # A tiny output arena: intermediates that were never released would overflow it
    # into one-off segments within a few dozen requests.
    s = Server([write_repo(tmp_path, with_invalid=False)], "--model-control-mode=explicit",
               "--load-model=chain", "--output-arena-byte-size=4096")
    try:
        c = httpclient.InferenceServerClient(s.url)
        assert c.is_model_ready("chain") and c.is_model_ready("add_sub")   # loaded for chain
        assert not c.is_model_ready("identity")
        c.load_model("fanout")                                             # loads identity
        assert c.is_model_ready("identity") and c.is_model_ready("fanout")
        for i in range(60):
            for model in ("chain", "fanout"):
                np.testing.assert_array_equal(
                    _infer(c, model, a=A + i).as_numpy("OUT0"), 2 * (A + i))
        # BLS outputs dropped inside execute go back with the caller's Executed: never
        # sent, add_sub's arena would overflow the same way. The calling thread reads
        # its answers until the first async call starts the BLS thread, which reads after.
        c.load_model("bls")
        for i in range(60):
            params = {"n": 2} if i == 30 else {}
            result = _infer(c, "bls", a=A + i, parameters=params)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"),
                                          (2 if params else 1) * (A + i + B))
        time.sleep(1.5)                  # spare one-off segments are unlinked after 1 s idle
        assert not [n for n in segments_of(s.proc.pid) if is_oneoff(n)], segments_of(s.proc.pid)
        c.unload_model("identity", unload_dependents=True)
        assert not c.is_model_ready("fanout") and c.is_model_ready("chain")
        c.unload_model("add_sub")
        assert not c.is_model_ready("chain")          # READY only while add_sub is
        with pytest.raises(InferenceServerException) as err:
            _infer(c, "chain")
        # unloaded with add_sub, as Triton's dependency graph does (test_ensemble_unlinked)
        assert err.value.message() == \
            "Request for unknown model: 'chain' has no available versions"
    finally:
        s.stop()
