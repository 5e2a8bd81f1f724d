"""Ragged batching (``batch_input`` / ``batch_output``) through a real tritond.

Concurrent requests of different lengths form one dynamic batch of an ONNX
model that takes the ragged input flat and one batch input of each kind
(tests/workers/models.py ``ragged_batch_io``): every response carries the whole
batch's batch-input values and its own slice of the scattered batch output,
as Triton's qa/L0_batch_input expects; a TorchScript model gets its ragged
input flat and its batch input too, and a direct sequence batch of two slots
gets the batch inputs of its rows. Configs Triton refuses fail to load
with Triton's messages; a Python model loads and, as with Triton's Python
backend, gets its requests without batch inputs.
"""
from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests import torch_models
from tests.server import Server
from tests.workers import models
from tritond.repository.modelconfig import from_dict, to_pbtxt

LENGTHS = (2, 4, 1, 3)            # qa/L0_batch_input's requests
PY_MODEL = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            names = [t.name() for t in r.inputs()]
            x = pb_utils.get_input_tensor_by_name(r, "INPUT").as_numpy()
            seen = np.array([[len(names)]], np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x),
                                                   pb_utils.Tensor("SEEN", seen)]))
        return out
'''

# model -> (change to the ragged config, expected text of its load failure)
BAD = {
    "bad_dtype": (lambda c: c["batch_input"][0].update(data_type="TYPE_INT64"),
                  "batch input data type must be TYPE_INT32 or TYPE_FP32"),
    "bad_source": (lambda c: c["batch_input"][1].update(source_input=["NOPE"]),
                   "unknown source input name 'NOPE'"),
    "two_sources": (lambda c: c["batch_input"][2].update(source_input=["INPUT", "INPUT"]),
                    "batch input kind 'BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO' expects 1 "
                    "source input, got 2"),
    "bad_target": (lambda c: c["batch_output"][0].update(target_name=["NOPE"]),
                   "unknown target output name 'NOPE'"),
    "twice_target": (lambda c: c["batch_output"][0].update(target_name=["OUT", "OUT"]),
                     "target output name 'OUT' can only be specified once"),
    "out_source": (lambda c: c["batch_output"][0].update(source_input=["OUT"]),
                   "unknown source input name 'OUT'"),
    # against the ONNX model (Triton's onnxruntime backend)
    "extra_batch_input": (lambda c: c["batch_input"].append(dict(c["batch_input"][0],
                                                                 target_name=["MORE"])),
                          "configuration expects 8 inputs, model provides 7"),
    "unknown_target": (lambda c: c["batch_input"][0].update(target_name=["COUNTS"]),
                       "unexpected batch input 'COUNTS', allowed inputs are: ACC, ACC0, COUNT"),
    "target_dtype": (lambda c: c["batch_input"][1].update(data_type="TYPE_INT32"),
                     "configuration expects datatype TYPE_INT32 for batch input 'ACC', "
                     "model provides TYPE_FP32"),
    # Triton counts the inputs less the optional ones before any other input check
    # (its ragged-optional text needs max_batch_size 0: tests/workers/test_workers_onnxio.py)
    "optional_ragged": (lambda c: c["input"][0].update(optional=True),
                        "configuration expects 6 inputs, model provides 7"),
}


# a ragged input the ONNX model takes as [batch, n]: Triton refuses the model at load
RAGGED_2D = ("unable to load model 'ragged_2d', configuration expects model provides input "
             "with shape [-1]  for ragged input 'INPUT0', model provides [-1,-1]")


def _repo(root):
    config = models.ragged_batch_io(root, "ragged", delay_us=5_000_000, preferred=len(LENGTHS))
    models.identity_fp32(root, "ragged_2d")
    (root / "ragged_2d" / "config.pbtxt").write_text(to_pbtxt(from_dict({
        "name": "ragged_2d", "backend": "onnxruntime", "max_batch_size": 8,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1],
                   "allow_ragged_batch": True}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1]}],
        "dynamic_batching": {}, "instance_group": [{"kind": "KIND_CPU", "count": 1}]})))
    for name, (change, _) in BAD.items():
        bad = json.loads(json.dumps(dict(config, name=name)))
        change(bad)
        shutil.copytree(root / "ragged" / "1", root / name / "1")
        (root / name / "config.pbtxt").write_text(to_pbtxt(from_dict(bad)))
    py = {"name": "pyragged", "backend": "python", "max_batch_size": 8,
          "input": config["input"],
          "output": [{"name": "OUT", "data_type": "TYPE_FP32", "dims": [-1]},
                     {"name": "SEEN", "data_type": "TYPE_FP32", "dims": [1]}],
          "batch_input": config["batch_input"][:2], "batch_output": config["batch_output"]}
    models.ragged_batch_io(root, "seqragged", delay_us=5_000_000, sequence=True)
    torch_models.ragged(root)
    torch_models.ragged_unbatched(root)
    models.python_model(root, "pyragged", PY_MODEL)
    (root / "pyragged" / "config.pbtxt").write_text(to_pbtxt(from_dict(py)))
    return root


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server([_repo(tmp_path_factory.mktemp("ragged"))], wait_ready=False)
    server.wait("/v2/health/live")
    client = httpclient.InferenceServerClient(server.url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
            all(client.is_model_ready(m) for m in ("ragged", "pyragged", "torch_ragged", "torch_ragged0",
                                                  "seqragged"))):
        time.sleep(0.2)
    yield server
    server.stop()


def _request(mod, n: int):
    x = np.full((1, n), n, np.float32)
    inp = mod.InferInput("INPUT", [1, n], "FP32")
    inp.set_data_from_numpy(x)
    return x, [inp]


def _check_batch(results):
    # the batch's order is the order the requests reached the server: read it from
    # the first answer, then every answer must agree with it
    order = results[0][1].as_numpy("COUNT_OUT").tolist()[0]
    assert sorted(order) == sorted(LENGTHS)
    acc = np.cumsum(order).tolist()
    for x, res in results:
        np.testing.assert_array_equal(res.as_numpy("OUT"), 2 * x)     # its own slice
        assert res.as_numpy("COUNT_OUT").tolist() == [order]
        assert res.as_numpy("ACC_OUT").tolist() == [acc]
        assert res.as_numpy("ACC0_OUT").tolist() == [[0, *acc]]
        assert res.as_numpy("MAX_OUT").tolist() == [[4]]
        assert res.as_numpy("ITEM_OUT").tolist() == [order]
        assert res.as_numpy("FLAT_OUT").tolist() == [order]


def test_concurrent_ragged_requests_form_one_batch_http(srv):
    client = httpclient.InferenceServerClient(srv.url, concurrency=len(LENGTHS),
                                              network_timeout=60)
    sent = [_request(httpclient, n) for n in LENGTHS]
    pending = [client.async_infer("ragged", inputs) for _, inputs in sent]
    _check_batch([(x, p.get_result()) for (x, _), p in zip(sent, pending)])
    client.close()


def test_concurrent_ragged_requests_form_one_batch_grpc(srv):
    def one(n):
        client = grpcclient.InferenceServerClient(srv.grpc_url)
        x, inputs = _request(grpcclient, n)
        return x, client.infer("ragged", inputs, client_timeout=60)

    with ThreadPoolExecutor(len(LENGTHS)) as pool:
        results = list(pool.map(one, LENGTHS))
    _check_batch(results)
    stats = httpclient.InferenceServerClient(srv.url).get_inference_statistics("ragged")
    sizes = {b["batch_size"] for b in stats["model_stats"][0]["batch_stats"]}
    assert sizes == {len(LENGTHS)}          # both tests' requests ran as batches of 4


def test_configs_triton_refuses_fail_to_load(srv):
    client = httpclient.InferenceServerClient(srv.url)
    deadline = time.monotonic() + 60
    while True:     # those checked against the ONNX model fail in their worker
        rows = {r["name"]: r for r in client.get_model_repository_index()}
        if time.monotonic() > deadline or \
                all(rows[n].get("state") != "LOADING" for n in BAD):
            break
        time.sleep(0.2)
    for name, (_, text) in BAD.items():
        assert rows[name]["state"] == "UNAVAILABLE", rows[name]
        assert text in rows[name]["reason"], (name, rows[name]["reason"])


def test_onnx_model_with_2d_ragged_input_is_refused(srv):
    client = httpclient.InferenceServerClient(srv.url)
    deadline = time.monotonic() + 60
    while True:     # checked against the ONNX model in its worker
        row = next(r for r in client.get_model_repository_index() if r["name"] == "ragged_2d")
        if time.monotonic() > deadline or row.get("state") != "LOADING":
            break
        time.sleep(0.2)
    assert row["state"] == "UNAVAILABLE", row
    assert row["reason"].endswith(RAGGED_2D), row
    assert not client.is_model_ready("ragged_2d")
    assert client.is_model_ready("ragged")      # the others keep serving


def test_python_model_gets_no_batch_inputs(srv):
    """Triton's Python backend ignores batch_input/batch_output (checked against 2.51)."""
    client = httpclient.InferenceServerClient(srv.url)
    x, inputs = _request(httpclient, 3)
    res = client.infer("pyragged", inputs)
    np.testing.assert_array_equal(res.as_numpy("OUT"), x)
    assert res.as_numpy("SEEN").tolist() == [[1]]


def test_pytorch_model_gets_flat_input_and_batch_input(srv):
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    inp = grpcclient.InferInput("INPUT__0", [1, 5], "FP32")
    inp.set_data_from_numpy(np.arange(5, dtype=np.float32).reshape(1, 5))
    res = client.infer("torch_ragged", [inp])
    np.testing.assert_array_equal(res.as_numpy("OUTPUT__0"), 2 * np.arange(5).reshape(1, 5))
    assert res.as_numpy("OUTPUT__1").tolist() == [[5]]      # accumulated element count


def test_unbatched_pytorch_model_gets_its_ragged_input_flat(srv):
    """Triton's pytorch backend feeds a ragged input as [total elements] whatever
    max_batch_size (src/pt/model_instance_state.cc, IsInputRagged)."""
    client = httpclient.InferenceServerClient(srv.url)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    inp = httpclient.InferInput("INPUT__0", [2, 3], "FP32")
    inp.set_data_from_numpy(x)
    res = client.infer("torch_ragged0", [inp])
    np.testing.assert_array_equal(res.as_numpy("OUTPUT__0"), x.reshape(-1))


def test_sequences_batched_in_their_slots_get_batch_inputs(srv):
    """A direct sequence batch of two slots (minimum_slot_utilization 1): one batch."""
    def one(corrid_n):
        corrid, n = corrid_n
        client = grpcclient.InferenceServerClient(srv.grpc_url)
        x, inputs = _request(grpcclient, n)
        return x, client.infer("seqragged", inputs, sequence_id=corrid, sequence_start=True,
                               sequence_end=True, client_timeout=60)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, [(7, 2), (8, 3)]))
    order = results[0][1].as_numpy("COUNT_OUT").tolist()[0]
    assert sorted(order) == [2, 3]
    for x, res in results:
        np.testing.assert_array_equal(res.as_numpy("OUT"), 2 * x)
        assert res.as_numpy("COUNT_OUT").tolist() == [order]
        assert res.as_numpy("ACC0_OUT").tolist() == [[0, order[0], 5]]
