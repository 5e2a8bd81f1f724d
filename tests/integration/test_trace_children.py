"""Trace coverage beyond plain infer, on a real tritond: the HTTP generate endpoints,
response-cache hits, ensemble steps and BLS calls as child traces (``parent_id``), in
Triton's JSON file and as OpenTelemetry spans received by a real OTLP/HTTP receiver."""
import http.client
import json
import shutil
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration.pipeline_repo import PYTHON, _IO2, write_repo
from tests.integration.test_trace import _Receiver, _traces
from tests.server import REPO, Server

COMPUTE = ["COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END"]
MODEL = ["REQUEST_START", "QUEUE_START", *COMPUTE, "REQUEST_END"]
HTTP_IN, HTTP_OUT = ["HTTP_RECV_START", "HTTP_RECV_END"], ["HTTP_SEND_START", "HTTP_SEND_END"]
DONE = "INFER_RESPONSE_COMPLETE"
TRACE_ON = ("--trace-config=level=TIMESTAMPS", "--trace-config=rate=1")

# A Python model calling ``target`` through BLS twice: traced (trace=request.trace(), as
# Triton's qa bls_simple) and not traced (no trace argument).
BLS_TRACED_PY = '''
import json
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            target = json.loads(r.parameters()).get("target", "chain")
            ins = [pb_utils.get_input_tensor_by_name(r, "INPUT0"),
                   pb_utils.get_input_tensor_by_name(r, "INPUT1")]
            traced = pb_utils.InferenceRequest(
                model_name=target, requested_output_names=["OUT0", "OUT1"], inputs=ins,
                request_id="bls-child", trace=r.trace()).exec()
            pb_utils.InferenceRequest(model_name="add_sub", inputs=ins,
                                      requested_output_names=["OUTPUT0"]).exec()
            if traced.has_error():
                raise pb_utils.TritonModelException(traced.error().message())
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUTPUT0", pb_utils.get_output_tensor_by_name(
                    traced, "OUT0").as_numpy().copy()),
                pb_utils.Tensor("OUTPUT1", pb_utils.get_output_tensor_by_name(
                    traced, "OUT1").as_numpy().copy())]))
        return out
'''


def _pipeline_repo(root):
    repo = write_repo(root, with_invalid=False)
    d = repo / "bls_traced" / "1"
    d.mkdir(parents=True)
    (d / "model.py").write_text(BLS_TRACED_PY)
    (repo / "bls_traced" / "config.pbtxt").write_text(PYTHON.format(
        name="bls_traced", io=_IO2.format(o0="OUTPUT0", o1="OUTPUT1"), count=1, extra=""))
    return repo


def _fp32_inputs(mod, value=1.0):
    a = np.full([4], value, dtype=np.float32)
    ins = [mod.InferInput("INPUT0", [4], "FP32"), mod.InferInput("INPUT1", [4], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(a)
    return ins


def _simple_inputs(mod):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    ins = [mod.InferInput("INPUT0", [1, 16], "INT32"), mod.InferInput("INPUT1", [1, 16], "INT32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(a)
    return ins


def _names(t):
    return [n for n, _ in sorted(t["stamps"], key=lambda s: s[1])]


def _read(path):
    return _traces(json.loads(path.read_text()))


# ------------------------------------------------------------------ (a) generate

def test_generate_and_generate_stream_are_traced(tmp_path):
    path = tmp_path / "g.json"
    srv = Server([REPO], f"--trace-config=triton,file={path}", *TRACE_ON)
    try:
        host, port = srv.url.split(":")
        doc = {"INPUT0": list(range(16)), "INPUT1": list(range(16)), "id": "gen-1"}
        for route in ("generate", "generate_stream"):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("POST", f"/v2/models/simple/{route}", body=json.dumps(doc))
            resp = conn.getresponse()
            body = resp.read().decode()
            assert resp.status == 200 and "OUTPUT0" in body, body
            conn.close()
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/v2/models/simple/generate", body=json.dumps({"INPUT0": [1]}))
        assert conn.getresponse().status == 400         # refused before the model: not traced
        conn.close()
    finally:
        assert srv.stop() == 0
    traces = _read(path)
    assert sorted(traces) == [1, 2]
    for t in traces.values():
        assert t["head"] == {"id": t["head"]["id"], "model_name": "simple", "model_version": 1,
                             "request_id": "gen-1"}
        assert _names(t) == [*HTTP_IN, *MODEL, DONE, *HTTP_OUT]


# ------------------------------------------------------------------ (b) cache hits

def test_a_cache_hit_is_traced_without_compute(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "simple", repo / "simple")
    cfg = repo / "simple" / "config.pbtxt"
    cfg.write_text(cfg.read_text() + "response_cache { enable: true }\n")
    path = tmp_path / "c.json"
    srv = Server([repo], "--cache-config=local,size=1048576",
                 f"--trace-config=triton,file={path}", *TRACE_ON)
    try:
        c = httpclient.InferenceServerClient(srv.url)
        for rid in ("miss", "hit"):
            c.infer("simple", _simple_inputs(httpclient), request_id=rid)
        c.close()
        g = grpcclient.InferenceServerClient(srv.grpc_url)
        g.infer("simple", _simple_inputs(grpcclient), request_id="grpc-hit")
        g.close()
    finally:
        assert srv.stop() == 0
    by_id = {t["head"]["request_id"]: t for t in _read(path).values()}
    assert _names(by_id["miss"]) == [*HTTP_IN, *MODEL, DONE, *HTTP_OUT]
    assert _names(by_id["hit"]) == [*HTTP_IN, "REQUEST_START", "QUEUE_START", "REQUEST_END",
                                    DONE, *HTTP_OUT]
    assert _names(by_id["grpc-hit"]) == ["GRPC_WAITREAD_START", "GRPC_WAITREAD_END",
                                         "REQUEST_START", "QUEUE_START", "REQUEST_END",
                                         "INFER_RESPONSE_COMPLETE", "GRPC_SEND_START",
                                         "GRPC_SEND_END"]
    assert by_id["hit"]["head"]["model_version"] == 1


# ------------------------------------------------------------------ (c) ensembles, (d) BLS

@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("trace-pipelines")
    return _pipeline_repo(root)


def _by_model(traces):
    out = {}
    for t in traces.values():
        out.setdefault(t["head"]["model_name"], []).append(t)
    return out


def test_ensemble_steps_are_child_traces(tmp_path, pipelines):
    path = tmp_path / "e.json"
    srv = Server([pipelines], f"--trace-config=triton,file={path}", *TRACE_ON)
    try:
        c = httpclient.InferenceServerClient(srv.url)
        r = c.infer("chain", _fp32_inputs(httpclient, 2.0), request_id="ens")
        assert r.as_numpy("OUT0").tolist() == [4.0] * 4     # 2a: the answer is unchanged
        c.infer("wrapped_chain", _fp32_inputs(httpclient), request_id="nested")
        c.close()
    finally:
        assert srv.stop() == 0
    traces = _read(path)
    chain = next(t for t in traces.values() if t["head"]["request_id"] == "ens")
    assert "parent_id" not in chain["head"]
    # the ensemble: no compute of its own (Triton), its QUEUE_START from the scheduler
    assert _names(chain) == [*HTTP_IN, "REQUEST_START", "QUEUE_START", "REQUEST_END", DONE,
                             *HTTP_OUT]
    steps = [t for t in traces.values() if t["head"].get("parent_id") == chain["head"]["id"]]
    assert [s["head"]["model_name"] for s in steps] == ["add_sub", "add_sub"]
    for s in steps:
        assert s["head"]["request_id"] == "ens" and s["head"]["model_version"] == 1
        assert _names(s) == MODEL
        assert s["head"]["id"] > chain["head"]["id"]
    first, second = sorted(steps, key=lambda s: s["stamps"][0][1])
    assert dict(first["stamps"])["REQUEST_END"] <= dict(second["stamps"])["REQUEST_START"]
    # an ensemble step that is an ensemble: its steps are its children
    top = next(t for t in traces.values() if t["head"]["request_id"] == "nested"
               and "parent_id" not in t["head"])
    inner = [t for t in traces.values() if t["head"].get("parent_id") == top["head"]["id"]]
    assert [t["head"]["model_name"] for t in inner] == ["chain"]
    leaves = [t for t in traces.values() if t["head"].get("parent_id") == inner[0]["head"]["id"]]
    assert [t["head"]["model_name"] for t in leaves] == ["add_sub", "add_sub"]
    assert len(traces) == 3 + 4


def test_bls_calls_with_the_request_trace_are_child_traces(tmp_path, pipelines):
    path = tmp_path / "b.json"
    srv = Server([pipelines], f"--trace-config=triton,file={path}", *TRACE_ON)
    try:
        c = httpclient.InferenceServerClient(srv.url)
        r = c.infer("bls_traced", _fp32_inputs(httpclient, 1.0))
        assert r.as_numpy("OUTPUT0").tolist() == [2.0] * 4
        c.close()
    finally:
        assert srv.stop() == 0
    traces = _read(path)
    models = _by_model(traces)
    # Triton's qa (L0_trace bls): the BLS model, its traced call (an ensemble) and the
    # ensemble's steps; the call made without trace=request.trace() is not traced
    assert sorted(models) == ["add_sub", "bls_traced", "chain"]
    bls, = models["bls_traced"]
    ens, = models["chain"]
    assert "parent_id" not in bls["head"]
    assert ens["head"]["parent_id"] == bls["head"]["id"]
    assert ens["head"]["request_id"] == "bls-child"
    assert _names(ens) == ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
    assert [t["head"]["parent_id"] for t in models["add_sub"]] == [ens["head"]["id"]] * 2
    assert sum("parent_id" in t["head"] for t in traces.values()) == 3
    assert _names(bls) == [*HTTP_IN, *MODEL, DONE, *HTTP_OUT]
    at = dict(bls["stamps"])
    child = dict(ens["stamps"])
    assert at["COMPUTE_START"] < child["REQUEST_START"] < child["REQUEST_END"] < \
        at["COMPUTE_END"]


def test_children_follow_the_parents_sampling(tmp_path, pipelines):
    """Children are never sampled on their own: rate 2, count 1 -> one group."""
    path = tmp_path / "r.json"
    srv = Server([pipelines], f"--trace-config=triton,file={path}",
                 "--trace-config=level=TIMESTAMPS", "--trace-config=rate=2",
                 "--trace-config=count=1")
    try:
        c = httpclient.InferenceServerClient(srv.url)
        for i in range(4):
            c.infer("chain", _fp32_inputs(httpclient), request_id=f"r{i}")
        c.close()
    finally:
        assert srv.stop() == 0
    objects = [o for f in sorted(tmp_path.iterdir()) if f.name.startswith("r.json")
               and f.read_text() for o in json.loads(f.read_text())]
    traces = _traces(objects)
    assert sorted(t["head"]["model_name"] for t in traces.values()) == [
        "add_sub", "add_sub", "chain"]
    assert {t["head"]["request_id"] for t in traces.values()} == {"r1"}


# ------------------------------------------------------------------ OpenTelemetry

def _tree(spans):
    by_id = {s.span_id: s for s in spans}
    out = {}
    for s in spans:
        parent = by_id.get(s.parent_span_id)
        if parent is not None:
            out.setdefault(parent.name, []).append(s.name)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.timeout(180)
def test_opentelemetry_spans_of_children_nest_under_their_parent(pipelines):
    pytest.importorskip("opentelemetry.sdk")
    rx = _Receiver()
    url = f"http://127.0.0.1:{rx.server_address[1]}/v1/traces"
    srv = Server([pipelines], "--trace-config=mode=opentelemetry", *TRACE_ON,
                 f"--trace-config=opentelemetry,url={url}",
                 "--trace-config=opentelemetry,bsp_schedule_delay=50")
    try:
        c = httpclient.InferenceServerClient(srv.url)
        c.infer("bls_traced", _fp32_inputs(httpclient))
        c.close()
        # InferRequest, bls_traced + compute, chain, 2 x (add_sub + compute)
        end = time.monotonic() + 60
        while len(rx.spans) < 8 and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        srv.stop()
        rx.shutdown()
    spans = [s for _, s in rx.spans]
    assert len(spans) == 8 and len({s.trace_id for s in spans}) == 1
    # Triton's qa opentelemetry_unittest _test_bls_trace nesting
    assert _tree(spans) == {"InferRequest": ["bls_traced"],
                            "bls_traced": ["chain", "compute"],
                            "chain": ["add_sub", "add_sub"],
                            "add_sub": ["compute", "compute"]}
    attrs = {s.name: {a.key: a.value for a in s.attributes} for s in spans
             if s.name in ("bls_traced", "chain")}
    assert attrs["chain"]["triton.trace_parent_id"].int_value == \
        attrs["bls_traced"]["triton.trace_id"].int_value
    assert attrs["bls_traced"]["triton.trace_parent_id"].int_value == 0
    chain = next(s for s in spans if s.name == "chain")
    assert [e.name for e in chain.events] == ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
