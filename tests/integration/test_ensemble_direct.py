"""The worker of an ensemble's final step answers the caller directly (no scheduler hop).

``chain`` (add_sub -> add_sub) asked by a client takes the direct path; the same
``chain`` as the one step of ``wrapped_chain`` is a nested ensemble: its final step's
worker answers wrapped_chain's caller, both levels composed (renames, both names
prefixing an error). Both must give the outputs and errors the forwarded path gives
(tests/scheduler/test_direct.py, test_ensembles.py);
``tritond_ensemble_direct_answers`` on /metrics counts the direct ones, per model the
client asked.
"""
from __future__ import annotations

import os
import time
import re
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.integration.pipeline_repo import write_repo
from tests.server import Server

A = np.array([1, 2, 3, 4], np.float32)
B = np.array([10, 20, 30, 40], np.float32)
PREFIX = "in ensemble 'wrapped_chain', "


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server([write_repo(tmp_path_factory.mktemp("direct"), with_invalid=False)],
                    "--allow-client-shm=true")
    yield server
    server.stop()


def direct_answers(srv, model: str) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics").read().decode()
    found = re.search(r'^tritond_ensemble_direct_answers\{model="%s",version="1"\} (\S+)$'
                      % model, text, re.M)
    return int(float(found.group(1))) if found else 0


def _inputs(a, b, mod):
    ins = [mod.InferInput("INPUT0", [4], "FP32"), mod.InferInput("INPUT1", [4], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    return ins


@pytest.mark.parametrize("mod", [httpclient, grpcclient])
def test_the_last_step_answers_directly_and_a_nested_ensembles_too(srv, mod):
    client = mod.InferenceServerClient(srv.url if mod is httpclient else srv.grpc_url)
    before = direct_answers(srv, "chain")
    before_wrapped = direct_answers(srv, "wrapped_chain")
    for i in range(5):
        direct = client.infer("chain", _inputs(A + i, B, mod))
        nested = client.infer("wrapped_chain", _inputs(A + i, B, mod))
        for name in ("OUT0", "OUT1"):
            np.testing.assert_array_equal(direct.as_numpy(name), nested.as_numpy(name))
        assert nested.get_response().model_name == "wrapped_chain" if mod is grpcclient else \
            nested.get_response()["model_name"] == "wrapped_chain"
        np.testing.assert_array_equal(direct.as_numpy("OUT0"), 2 * (A + i))
        assert direct.get_response().model_name == "chain" if mod is grpcclient else \
            direct.get_response()["model_name"] == "chain"
        only = client.infer("chain", _inputs(A, B, mod),
                            outputs=[mod.InferRequestedOutput("OUT1")])
        assert only.as_numpy("OUT0") is None
        np.testing.assert_array_equal(only.as_numpy("OUT1"), 2 * B)
    # 10 client requests of chain took the direct path, and the 5 of wrapped_chain
    # (counted for wrapped_chain only: chain inside it answered wrapped_chain's caller)
    assert direct_answers(srv, "chain") == before + 10
    assert direct_answers(srv, "wrapped_chain") == before_wrapped + 5
    stats = client.get_inference_statistics("chain", as_json=True) if mod is grpcclient \
        else client.get_inference_statistics("chain")
    ok = stats["model_stats"][0]["inference_stats"]["success"]["count"]
    assert int(ok) >= 15                  # the direct ones and those inside wrapped_chain


@pytest.mark.parametrize("mod", [httpclient, grpcclient])
def test_an_error_of_the_last_step_reads_as_on_the_forwarded_path_at_each_level(srv, mod):
    client = mod.InferenceServerClient(srv.url if mod is httpclient else srv.grpc_url)
    before = direct_answers(srv, "chain")
    a = A.copy()
    a[0] = -1 - B[0]                      # the first step passes, the last sees -1
    with pytest.raises(InferenceServerException) as direct:
        client.infer("chain", _inputs(a, B, mod))
    with pytest.raises(InferenceServerException) as nested:
        client.infer("wrapped_chain", _inputs(a, B, mod))
    assert direct.value.message() == "in ensemble 'chain', add_sub refuses -1"
    assert nested.value.message() == PREFIX + direct.value.message()    # both levels
    assert direct.value.status() == nested.value.status()
    assert direct_answers(srv, "chain") == before + 1
    client.infer("chain", _inputs(A, B, mod))     # the server goes on


@pytest.mark.parametrize("model", ["chain", "wrapped_chain"])
def test_client_shm_outputs_are_written_by_the_last_worker_and_forgotten(srv, model):
    from tests.integration.test_client_shm import mapped_by
    from tests.integration.sched_repo import wait_for

    client = httpclient.InferenceServerClient(srv.url)
    key = f"/direct-{os.getpid()}"
    handle = shm.create_shared_memory_region("direct_io", key, 64)
    try:
        shm.set_shared_memory_region(handle, [A, B])
        client.register_system_shared_memory("direct_io", key, 64)
        ins = [httpclient.InferInput("INPUT0", [4], "FP32"),
               httpclient.InferInput("INPUT1", [4], "FP32")]
        ins[0].set_shared_memory("direct_io", 16)
        ins[1].set_shared_memory("direct_io", 16, offset=16)
        outs = [httpclient.InferRequestedOutput("OUT0"), httpclient.InferRequestedOutput("OUT1")]
        outs[0].set_shared_memory("direct_io", 16, offset=32)
        outs[1].set_shared_memory("direct_io", 16, offset=48)
        before = direct_answers(srv, model)
        result = client.infer(model, ins, outputs=outs)
        assert direct_answers(srv, model) == before + 1
        assert "data" not in result.get_output("OUT0")
        np.testing.assert_array_equal(
            shm.get_contents_as_numpy(handle, np.float32, [4], offset=32), 2 * A)
        np.testing.assert_array_equal(
            shm.get_contents_as_numpy(handle, np.float32, [4], offset=48), 2 * B)
        assert mapped_by(srv, key)
        client.unregister_system_shared_memory("direct_io")
        wait_for(lambda: mapped_by(srv, key) == [], 10, "every mapping dropped")
    finally:
        shm.destroy_shared_memory_region(handle)
        client.close()


def _chain_counts(client):
    st = client.get_inference_statistics("chain")["model_stats"][0]["inference_stats"]
    return st["success"]["count"] + st["fail"]["count"]


def test_a_caller_gone_while_the_last_step_runs_still_ends_the_request(srv):
    http = httpclient.InferenceServerClient(srv.url)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    before = _chain_counts(http)
    slow = A.copy()
    slow[0] = -3 - B[0]                   # the last step sees -3: it sleeps 0.3 s
    with pytest.raises(InferenceServerException) as err:
        grpc.infer("chain", _inputs(slow, B, grpcclient), client_timeout=0.1)
    assert "DEADLINE" in str(err.value.status()).upper()
    end = time.monotonic() + 10           # its worker's Executed ends the run
    while _chain_counts(http) != before + 1 and time.monotonic() < end:
        time.sleep(0.05)
    assert _chain_counts(http) == before + 1
    for i in range(20):                   # nothing left held: the chain goes on
        np.testing.assert_array_equal(
            http.infer("chain", _inputs(A + i, B, httpclient)).as_numpy("OUT0"), 2 * (A + i))


def test_a_crash_of_the_last_steps_worker_fails_the_request_naming_the_ensemble(srv):
    # keep last: add_sub restarts after it
    client = httpclient.InferenceServerClient(srv.url)
    crash = A.copy()
    crash[0] = -2 - B[0]                  # the first step passes, the last is killed
    with pytest.raises(InferenceServerException) as err:
        client.infer("chain", _inputs(crash, B, httpclient))
    assert err.value.message().startswith("in ensemble 'chain', ")
    assert "killed by signal SIGKILL" in err.value.message()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            out = client.infer("chain", _inputs(A, B, httpclient)).as_numpy("OUT0")
            break
        except InferenceServerException:
            time.sleep(0.2)
    else:
        raise AssertionError("chain did not recover after the crash")
    np.testing.assert_array_equal(out, 2 * A)
