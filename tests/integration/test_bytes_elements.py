"""Many-element BYTES through a Python model (the frontend's length table path,
shm/lengths.py): every element arrives as the client's exact ``bytes`` (trailing
NULs, empty and long elements included) over HTTP binary, JSON and gRPC, and a
malformed tensor is still refused by the frontend with Triton's words."""
import http.client
import json
import struct

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.server import Server

ECHO = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            arr = pb_utils.get_input_tensor_by_name(r, "IN0").as_numpy()
            if arr.dtype != object or any(type(e) is not bytes for e in arr.ravel()):
                raise pb_utils.TritonModelException("elements are not bytes")
            # OUT1: new objects (an echo's output reuses the input's bytes as they came)
            flipped = np.array([e[::-1] for e in arr.ravel()], dtype=object)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT0", arr),
                                                   pb_utils.Tensor("OUT1", flipped)]))
        return out
'''
CONFIG = ('name: "strings"\nbackend: "python"\nmax_batch_size: 0\n'
          'input [ { name: "IN0" data_type: TYPE_STRING dims: [ -1 ] } ]\n'
          'output [ { name: "OUT0" data_type: TYPE_STRING dims: [ -1 ] },\n'
          '         { name: "OUT1" data_type: TYPE_STRING dims: [ -1 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
# Mutates its input array in place and returns it (OUT0), returns its elements reversed
# (OUT1: another array of the same objects) and a copy (OUT2: the same objects in order).
MUTATE = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            arr = pb_utils.get_input_tensor_by_name(r, "IN0").as_numpy()
            same = arr.copy()
            backwards = arr[::-1]
            if arr.size:
                backwards = backwards.copy()
                arr[0] = b"changed\\x00"
                arr[-1] = arr[-1] + b"!"
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT0", arr),
                                                   pb_utils.Tensor("OUT1", backwards),
                                                   pb_utils.Tensor("OUT2", same)]))
        return out
'''
MUTATE_CONFIG = ('name: "mutate"\nbackend: "python"\nmax_batch_size: 0\n'
                 'input [ { name: "IN0" data_type: TYPE_STRING dims: [ -1 ] } ]\n'
                 'output [ { name: "OUT0" data_type: TYPE_STRING dims: [ -1 ] },\n'
                 '         { name: "OUT1" data_type: TYPE_STRING dims: [ -1 ] },\n'
                 '         { name: "OUT2" data_type: TYPE_STRING dims: [ -1 ] } ]\n'
                 'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
# Many short elements (the frontend's table, the worker's one-format split), non-UTF-8 and
# empty ones among them.
WORDS = np.array([b"element-%d" % i for i in range(1000)] + [b"\xff\xfe\x80", b"", b"\x00z"] * 20,
                 dtype=object)
AWKWARD = np.array([b"a\x00", b"", b"\x00\x00", b"x" * 300, b"\xff\xfe", b"tail\x00"] * 20
                   + [b"element-%d" % i for i in range(100)], dtype=object)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    (repo / "strings" / "1").mkdir(parents=True)
    (repo / "strings" / "1" / "model.py").write_text(ECHO)
    (repo / "strings" / "config.pbtxt").write_text(CONFIG)
    (repo / "mutate" / "1").mkdir(parents=True)
    (repo / "mutate" / "1" / "model.py").write_text(MUTATE)
    (repo / "mutate" / "config.pbtxt").write_text(MUTATE_CONFIG)
    srv = Server([repo])
    yield srv
    srv.stop()


def _http(server, sample, binary=True):
    c = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("IN0", [len(sample)], "BYTES")
    inp.set_data_from_numpy(sample, binary_data=binary)
    res = c.infer("strings", [inp], outputs=[
        httpclient.InferRequestedOutput("OUT0", binary_data=binary),
        httpclient.InferRequestedOutput("OUT1", binary_data=binary)])
    return _checked(res, sample)


def _grpc(server, sample):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("IN0", [len(sample)], "BYTES")
    inp.set_data_from_numpy(sample)
    res = c.infer("strings", [inp], outputs=[grpcclient.InferRequestedOutput("OUT0"),
                                             grpcclient.InferRequestedOutput("OUT1")])
    c.close()
    return _checked(res, sample)


def _checked(res, sample):
    """OUT0 (the echo); OUT1 must be what the model computed from the right elements."""
    def flat(name):     # JSON answers come back as str elements
        return [e.encode() if isinstance(e, str) else e for e in res.as_numpy(name)]
    assert flat("OUT1") == [e[::-1] for e in sample]
    return flat("OUT0")


def test_http_binary_keeps_every_byte(server):
    for _ in range(3):        # the second and third take the known-signature path
        assert _http(server, AWKWARD) == list(AWKWARD)


def test_grpc_keeps_every_byte(server):
    assert _grpc(server, AWKWARD) == list(AWKWARD)


def test_more_elements_than_one_struct_format(server):
    sample = np.array([b"e%d\x00" % i for i in range(9000)], dtype=object)
    assert _grpc(server, sample) == list(sample)


def test_json_strings(server):
    """JSON both ways: plain strings (the answer's one-join array) and strings with
    bytes JSON escapes (the per-element path)."""
    for sample in ([b"s%d ok" % i for i in range(64)],
                   [b'q"%d\\\n\x01' % i for i in range(40)]):
        sample = np.array(sample, dtype=object)
        assert [e.encode() if isinstance(e, str) else e
                for e in _http(server, sample, binary=False)] == list(sample)


def test_truncated_prefixes_are_refused_by_the_frontend(server):
    raw = b"".join(struct.pack("<I", len(e)) + e for e in AWKWARD)
    for cut, words in ((3, "expecting string of length 10 but only 7 bytes available"),
                       (len(b"element-99") + 2, "expecting 4 bytes but only 2 bytes available")):
        head = json.dumps({"inputs": [{"name": "IN0", "shape": [len(AWKWARD)], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": len(raw) - cut}}]})
        conn = http.client.HTTPConnection(server.url)
        conn.request("POST", "/v2/models/strings/infer", head.encode() + raw[:-cut],
                     {"Inference-Header-Content-Length": str(len(head))})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 400 and words in body["error"], body
    assert _http(server, AWKWARD) == list(AWKWARD)       # the server keeps going


@pytest.mark.parametrize("sample", [
    WORDS,
    np.array([bytes([i % 250 + 1]) * 255 for i in range(300)], dtype=object),   # 255 bytes each
    np.array([bytes([i % 250 + 1]) * 256 for i in range(300)], dtype=object),   # 256 bytes each
    np.array([b"w%d" % i for i in range(400)] + [b"\x01" * 255, b"\x02" * 256], dtype=object),
    np.array([b"huge" * 300_000] + [b"s%d" % i for i in range(300)], dtype=object),
    np.array([b""] * 300, dtype=object),
    np.array([], dtype=object),
], ids=["words", "255", "256", "mixed-255-256", "huge", "all-empty", "none"])
def test_many_short_or_odd_elements_every_way(server, sample):
    want = list(sample)
    assert _http(server, sample) == want
    assert _grpc(server, sample) == want
    try:
        text = [e.decode() for e in want]
    except UnicodeDecodeError:
        return                                              # JSON carries text only
    assert _http(server, sample, binary=False) == [t.encode() for t in text]


def _mutate(server, sample, protocol):
    client = httpclient if protocol == "http" else grpcclient
    c = client.InferenceServerClient(server.url if protocol == "http" else server.grpc_url)
    inp = client.InferInput("IN0", [len(sample)], "BYTES")
    inp.set_data_from_numpy(sample)
    res = c.infer("mutate", [inp], outputs=[client.InferRequestedOutput(n) for n in
                                            ("OUT0", "OUT1", "OUT2")])
    return [list(res.as_numpy(n)) for n in ("OUT0", "OUT1", "OUT2")]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("sample", [WORDS, AWKWARD, np.array([], dtype=object)],
                         ids=["words", "awkward", "none"])
def test_a_model_that_changes_or_reorders_its_input(server, sample, protocol):
    """An array changed in place, or another array of the input's objects, is answered with
    its own elements (never the input's bytes reused where they differ)."""
    for _ in range(2):
        changed, backwards, same = _mutate(server, sample, protocol)
        want = list(sample)
        if want:
            want[0], want[-1] = b"changed\x00", want[-1] + b"!"
        assert changed == want
        assert backwards == list(sample)[::-1]
        assert same == list(sample)


# Large tensors (the vectorised paths: the frontend's sliced table scan, 16k-element joins,
# the JSON answer written with numpy) at a size that still runs in a second or two.
_POOL = [b"", b"\x00", b"a\x00b", b"\xff\xfe\x80", b"tok", b"x" * 300, b'q"\\\n\x01', b"\xc3\xa9"]
LARGE = np.array([_POOL[i % len(_POOL)] + b"%d" % (i % 97) * (i % 3) for i in range(200_000)],
                 dtype=object)
LARGE_SHORT = np.array([b"w%d\xff" % (i % 5000) for i in range(200_000)], dtype=object)


@pytest.mark.parametrize("sample", [LARGE, LARGE_SHORT], ids=["awkward", "short"])
def test_large_bytes_over_grpc_raw_and_http_binary(server, sample):
    want = list(sample)
    assert _grpc(server, sample) == want
    assert _http(server, sample) == want


@pytest.mark.parametrize("sample", [LARGE, LARGE_SHORT], ids=["awkward", "short"])
def test_large_bytes_in_grpc_bytes_contents(server, sample):
    """``contents.bytes_contents`` (typed elements, not raw bytes), as a client may send."""
    import grpc
    from tritonclient.grpc import service_pb2
    req = service_pb2.ModelInferRequest(model_name="strings")
    t = req.inputs.add(name="IN0", datatype="BYTES")
    t.shape.append(len(sample))
    t.contents.bytes_contents.extend(list(sample))
    req.outputs.add(name="OUT0")
    req.outputs.add(name="OUT1")
    with grpc.insecure_channel(server.grpc_url,
                               options=[("grpc.max_receive_message_length", 1 << 30)]) as ch:
        data = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
            req.SerializeToString(), timeout=120)
    resp = service_pb2.ModelInferResponse.FromString(data)
    serialized = b"".join(struct.pack("<I", len(e)) + e for e in sample)
    flipped = b"".join(struct.pack("<I", len(e)) + e[::-1] for e in sample)
    assert [o.name for o in resp.outputs] == ["OUT0", "OUT1"]
    assert list(resp.raw_output_contents) == [serialized, flipped]


def test_large_bytes_as_json_text(server):
    """JSON both ways with ~150k strings: quotes, backslashes, controls, NULs, non-ASCII (OUT0
    only: OUT1's reversed UTF-8 is no text)."""
    sample = np.array([e for e in LARGE if e.isascii() or e.startswith(b"\xc3\xa9")],
                      dtype=object)
    c = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("IN0", [len(sample)], "BYTES")
    inp.set_data_from_numpy(sample, binary_data=False)
    res = c.infer("strings", [inp],
                  outputs=[httpclient.InferRequestedOutput("OUT0", binary_data=False)])
    assert [e.encode() for e in res.as_numpy("OUT0")] == list(sample)
