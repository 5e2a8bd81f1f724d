"""``platform: "torch_aoti"`` through a real tritond: one AOTInductor package compiled per
session (tests/aoti_models.py), served under config variants for Triton's two naming
conventions, batching, request errors and load errors as the repository index reports them."""
from __future__ import annotations

import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests import aoti_models
from tests.server import Server

LOADED = ("aoti_ordinal", "aoti_named", "aoti_types")
# model -> (config variant, the load error it reports); the other load errors (names,
# datatypes) are tested in process, tests/workers/test_workers_aoti.py: each model that fails
# here costs a worker importing torch
BROKEN = {
    "aoti_count": (dict(extra='input [ { name: "INPUT__2" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'),
                   'Failed to load model "aoti_count_0" configuration expects 3 inputs, '
                   "but model expects 2 inputs."),
    "aoti_sequence": (dict(extra="sequence_batching { }\n"),
                      "Sequence batching is not supported yet."),
}


@pytest.fixture(scope="module")
def srv(aoti_package, tmp_path_factory):
    repo = tmp_path_factory.mktemp("aoti_repo")
    # ordinal names; a long queue delay lets concurrent requests fuse into one batch
    aoti_models.add_model(repo, aoti_package, "aoti_ordinal",
                          extra="dynamic_batching { max_queue_delay_microseconds: 300000 }\n")
    # forward-based names, mixed with an ordinal one, listed out of order; not batching
    aoti_models.add_model(repo, aoti_package, "aoti_named", mbs=0, in0="KWARGS[b]",
                          in1="ARGS[0]", out0="RESULT[diff]", out1="OUTPUT__0")
    # an output datatype the package does not give: requests for it fail, the model stays
    aoti_models.add_model(repo, aoti_package, "aoti_types", t_out="TYPE_FP64")
    for name, (variant, _) in BROKEN.items():
        aoti_models.add_model(repo, aoti_package, name, **variant)
    # the package's own input checks (off by default, as under Triton)
    server = Server([repo], wait_ready=False, env={"AOTI_RUNTIME_CHECK_INPUTS": "1"})
    server.wait("/v2/health/live")
    client = httpclient.InferenceServerClient(server.url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = {r["name"]: r for r in client.get_model_repository_index()}
        if all(rows.get(n, {}).get("state") in ("READY", "UNAVAILABLE")
               for n in (*LOADED, *BROKEN)):
            break
        time.sleep(0.2)
    server.rows = rows
    yield server
    server.stop()


def _inputs(arrays: dict[str, np.ndarray]) -> list:
    out = []
    for name, arr in arrays.items():
        dtype = "INT32" if arr.dtype == np.int32 else "FP32"
        t = httpclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        out.append(t)
    return out


def test_ordinal_names_exact_values_and_metadata(srv):
    client = httpclient.InferenceServerClient(srv.url)
    meta = client.get_model_metadata("aoti_ordinal")
    assert meta["platform"] == "torch_aoti"
    # Triton's warning (the log line escapes its quotes)
    assert 'Skipping auto-complete for model \\"aoti_ordinal\\".' in srv.output()
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, np.float32)
    result = client.infer("aoti_ordinal", _inputs({"INPUT__0": a, "INPUT__1": b}))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), a + b)     # "sum": first key
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__1"), a - b)


def test_forward_names_bind_by_name_not_config_order(srv):
    client = httpclient.InferenceServerClient(srv.url)
    a, b = np.full((3, 4), 7, np.float32), np.full((3, 4), 2, np.float32)
    result = client.infer("aoti_named", _inputs({"ARGS[0]": a, "KWARGS[b]": b}))
    np.testing.assert_array_equal(result.as_numpy("RESULT[diff]"), a - b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), a + b)


def test_concurrent_requests_fuse_into_batches(srv):
    client = httpclient.InferenceServerClient(srv.url, concurrency=6)
    before = client.get_inference_statistics("aoti_ordinal")["model_stats"][0]
    rows = [np.full((1, 4), i, np.float32) for i in range(6)]
    pending = [client.async_infer("aoti_ordinal",
                                  _inputs({"INPUT__0": a, "INPUT__1": np.ones((1, 4), np.float32)}))
               for a in rows]
    for a, handle in zip(rows, pending):
        result = handle.get_result()
        np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), a + 1)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT__1"), a - 1)
    after = client.get_inference_statistics("aoti_ordinal")["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == 6
    assert after["execution_count"] - before["execution_count"] < 6, after


def test_request_errors_leave_the_model_serving(srv):
    client = httpclient.InferenceServerClient(srv.url)
    # past the package's batch range (1..8): its own input check refuses it (the
    # server runs with AOTI_RUNTIME_CHECK_INPUTS=1)
    big = np.ones((9, 4), np.float32)
    with pytest.raises(InferenceServerException, match="dim value is too large"):
        client.infer("aoti_named", _inputs({"ARGS[0]": big, "KWARGS[b]": big}))
    a = np.ones((1, 4), np.float32)
    result = client.infer("aoti_named", _inputs({"ARGS[0]": a, "KWARGS[b]": a}))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__0"), a + a)


def test_output_datatype_mismatch_fails_the_request(srv):
    client = httpclient.InferenceServerClient(srv.url)
    a = np.ones((1, 4), np.float32)
    inputs = _inputs({"INPUT__0": a, "INPUT__1": a})
    with pytest.raises(InferenceServerException) as err:
        client.infer("aoti_types", inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT__0")])
    assert ('Inductor model instance "aoti_types_0" output tensor "OUTPUT__0" has datatype '
            "TYPE_FP32 but model configuration expects TYPE_FP64.") in str(err.value)
    result = client.infer("aoti_types", inputs,
                          outputs=[httpclient.InferRequestedOutput("OUTPUT__1")])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT__1"), a - a)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_load_errors(srv, name):
    row = srv.rows[name]
    assert row["state"] == "UNAVAILABLE"
    assert BROKEN[name][1] in row["reason"], row["reason"]
