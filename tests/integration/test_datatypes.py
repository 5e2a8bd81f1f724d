"""Every protocol datatype end to end (ONNX Identity per type) over HTTP and gRPC."""
import ml_dtypes
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from tests.server import Server

TYPES = {  # protocol name: (onnx type, config type, numpy sample)
    "BOOL": (TensorProto.BOOL, "TYPE_BOOL", np.array([[True, False, True]])),
    "UINT8": (TensorProto.UINT8, "TYPE_UINT8", np.array([[0, 7, 255]], np.uint8)),
    "UINT16": (TensorProto.UINT16, "TYPE_UINT16", np.array([[0, 7, 65535]], np.uint16)),
    "UINT32": (TensorProto.UINT32, "TYPE_UINT32", np.array([[0, 7, 2**32 - 1]], np.uint32)),
    "UINT64": (TensorProto.UINT64, "TYPE_UINT64", np.array([[0, 7, 2**64 - 1]], np.uint64)),
    "INT8": (TensorProto.INT8, "TYPE_INT8", np.array([[-128, 0, 127]], np.int8)),
    "INT16": (TensorProto.INT16, "TYPE_INT16", np.array([[-5, 0, 32767]], np.int16)),
    "INT32": (TensorProto.INT32, "TYPE_INT32", np.array([[-5, 0, 2**31 - 1]], np.int32)),
    "INT64": (TensorProto.INT64, "TYPE_INT64", np.array([[-5, 0, 2**63 - 1]], np.int64)),
    "FP16": (TensorProto.FLOAT16, "TYPE_FP16", np.array([[0.5, -1.25, 65504]], np.float16)),
    "FP32": (TensorProto.FLOAT, "TYPE_FP32", np.array([[0.1, -2.5, 3e38]], np.float32)),
    "FP64": (TensorProto.DOUBLE, "TYPE_FP64", np.array([[0.1, -2.5, 1e300]], np.float64)),
    "BYTES": (TensorProto.STRING, "TYPE_STRING", np.array([[b"a", b"", b"xyz"]], dtype=object)),
    # tritonclient since r26.06 takes and returns ml_dtypes.bfloat16 arrays for BF16
    "BF16": (TensorProto.BFLOAT16, "TYPE_BF16", np.array([[1.0, -2.0, 0.5]], ml_dtypes.bfloat16)),
}
NO_JSON = {"FP16", "BF16"}


def model_name(dtype):
    return f"id_{dtype.lower()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("dtypes")
    for dtype, (onnx_type, cfg_type, _) in TYPES.items():
        d = repo / model_name(dtype)
        (d / "1").mkdir(parents=True)
        graph = helper.make_graph(
            [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], dtype,
            [helper.make_tensor_value_info("INPUT0", onnx_type, ["b", 3])],
            [helper.make_tensor_value_info("OUTPUT0", onnx_type, ["b", 3])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.save(model, str(d / "1" / "model.onnx"))
        (d / "config.pbtxt").write_text(
            f'backend: "onnxruntime"\nmax_batch_size: 4\n'
            f'input [{{ name: "INPUT0" data_type: {cfg_type} dims: [3] }}]\n'
            f'output [{{ name: "OUTPUT0" data_type: {cfg_type} dims: [3] }}]\n'
            'instance_group [{ kind: KIND_CPU count: 1 }]\n')
    srv = Server([repo])
    yield srv
    srv.stop()


def check(got, dtype, sample):
    if dtype == "BYTES":
        got = [x if isinstance(x, bytes) else x.encode() for x in got.ravel()]
        assert got == list(sample.ravel())
    else:
        np.testing.assert_array_equal(got, sample)


@pytest.mark.parametrize("dtype", list(TYPES))
@pytest.mark.parametrize("binary", [True, False])
def test_http(server, dtype, binary):
    sample = TYPES[dtype][2]
    c = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("INPUT0", list(sample.shape), dtype)
    if dtype in NO_JSON and not binary:
        # tritonclient itself refuses to put FP16/BF16 in JSON; send it by hand
        import json, http.client
        body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": dtype,
                                        "data": [1, 2, 3]}]})
        conn = http.client.HTTPConnection(server.url)
        conn.request("POST", f"/v2/models/{model_name(dtype)}/infer", body)
        resp = conn.getresponse()
        assert resp.status == 400 and dtype in json.loads(resp.read())["error"]
        return
    inp.set_data_from_numpy(sample, binary_data=binary)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary or dtype in NO_JSON)
    r = c.infer(model_name(dtype), [inp], outputs=[out])
    check(r.as_numpy("OUTPUT0"), dtype, sample)
    assert r.get_output("OUTPUT0")["datatype"] == dtype


@pytest.mark.parametrize("dtype", list(TYPES))
def test_grpc(server, dtype):
    sample = TYPES[dtype][2]
    c = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("INPUT0", list(sample.shape), dtype)
    inp.set_data_from_numpy(sample)
    r = c.infer(model_name(dtype), [inp])
    check(r.as_numpy("OUTPUT0"), dtype, sample)
    assert r.get_output("OUTPUT0").datatype == dtype


def test_wrong_dtype_names_both(server):
    c = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("INPUT0", [1, 3], "FP64")
    inp.set_data_from_numpy(TYPES["FP64"][2])
    with pytest.raises(InferenceServerException) as exc:
        c.infer(model_name("FP32"), [inp])
    assert "data-type" in exc.value.message()
