"""Request tracing on a real tritond: Triton's trace JSON, the settings API, rate and
count, and OpenTelemetry spans received by a real OTLP/HTTP receiver."""
import http.server
import json
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.server import REPO, Server

HTTP_NAMES = ["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "QUEUE_START",
              "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END",
              "REQUEST_END", "INFER_RESPONSE_COMPLETE", "HTTP_SEND_START", "HTTP_SEND_END"]
GRPC_NAMES = ["GRPC_WAITREAD_START", "GRPC_WAITREAD_END", *HTTP_NAMES[2:10],
              "GRPC_SEND_START", "GRPC_SEND_END"]


def _inputs(mod):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    ins = [mod.InferInput("INPUT0", [1, 16], "INT32"), mod.InferInput("INPUT1", [1, 16], "INT32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(a)
    return ins


def _http_infer(srv, n=1, headers=None, request_id=""):
    c = httpclient.InferenceServerClient(srv.url)
    for _ in range(n):
        c.infer("simple", _inputs(httpclient), headers=headers, request_id=request_id)
    c.close()


def _grpc_infer(srv, n=1, headers=None):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    for _ in range(n):
        c.infer("simple", _inputs(grpcclient), headers=headers)
    c.close()


def _traces(objects):
    """Triton's JSON objects -> {id: {"head": {...}, "stamps": [(name, ns)...]}}."""
    out = {}
    for obj in objects:
        t = out.setdefault(obj["id"], {"head": None, "stamps": []})
        if "model_name" in obj:
            t["head"] = obj
        for s in obj.get("timestamps", ()):
            t["stamps"].append((s["name"], s["ns"]))
    return out


def test_trace_file_has_triton_json_for_http_and_grpc(tmp_path):
    path = tmp_path / "trace.json"
    srv = Server([REPO], f"--trace-config=triton,file={path}", "--trace-config=level=TIMESTAMPS",
                 "--trace-config=rate=1")
    try:
        _http_infer(srv, request_id="my-req")
        _grpc_infer(srv)
    finally:
        assert srv.stop() == 0
    traces = _traces(json.loads(path.read_text()))      # written at exit (log-frequency 0)
    assert sorted(traces) == [1, 2]
    h, g = traces[1], traces[2]
    assert h["head"] == {"id": 1, "model_name": "simple", "model_version": 1,
                         "request_id": "my-req"}
    assert g["head"] == {"id": 2, "model_name": "simple", "model_version": 1}
    # every process's timestamps, in the order the request lived them
    assert [n for n, _ in h["stamps"]] == HTTP_NAMES
    assert [n for n, _ in sorted(g["stamps"], key=lambda s: s[1])] == GRPC_NAMES
    ns = [t for _, t in h["stamps"]]
    assert ns == sorted(ns) and ns[0] > 0


def test_tensors_level_writes_inputs_and_outputs(tmp_path):
    path = tmp_path / "tensors.json"
    srv = Server([REPO], f"--trace-config=triton,file={path}", "--trace-config=level=TENSORS",
                 "--trace-config=rate=1")
    try:
        _http_infer(srv)
        c = grpcclient.InferenceServerClient(srv.grpc_url)
        inp = grpcclient.InferInput("INPUT0", [1, 16], "BYTES")
        inp.set_data_from_numpy(np.array([[f"s{v}".encode() for v in range(16)]], object))
        c.infer("simple_string", [inp])
        c.close()
    finally:
        srv.stop()
    objects = json.loads(path.read_text())
    assert not [o for o in objects if "timestamps" in o]            # TENSORS only
    tensors = [(o["id"], o["activity"], o["tensor"]["name"]) for o in objects if "tensor" in o]
    assert tensors == [(1, "TENSOR_QUEUE_INPUT", "INPUT0"), (1, "TENSOR_QUEUE_INPUT", "INPUT1"),
                       (1, "TENSOR_BACKEND_OUTPUT", "OUTPUT0"),
                       (1, "TENSOR_BACKEND_OUTPUT", "OUTPUT1"),
                       (2, "TENSOR_QUEUE_INPUT", "INPUT0"), (2, "TENSOR_BACKEND_OUTPUT", "OUTPUT0")]
    by = {(o["id"], o["tensor"]["name"], o["activity"]): o["tensor"]
          for o in objects if "tensor" in o}
    assert by[(1, "INPUT0", "TENSOR_QUEUE_INPUT")] == {
        "name": "INPUT0", "data": ",".join(str(v) for v in range(16)), "shape": "1,16",
        "dtype": "INT32"}
    assert by[(1, "OUTPUT0", "TENSOR_BACKEND_OUTPUT")]["data"] == \
        ",".join(str(2 * v) for v in range(16))
    out = by[(2, "OUTPUT0", "TENSOR_BACKEND_OUTPUT")]
    assert out["dtype"] == "BYTES" and out["data"] == ",".join(f'"s{v}"' for v in range(16))


def test_grpc_stream_requests_are_traced(tmp_path):
    import queue
    path = tmp_path / "s.json"
    srv = Server([REPO], f"--trace-config=triton,file={path}", "--trace-config=level=TIMESTAMPS",
                 "--trace-config=rate=1")
    try:
        c = grpcclient.InferenceServerClient(srv.grpc_url)
        got = queue.Queue()
        c.start_stream(callback=lambda result, error: got.put(error))
        for i in range(2):
            c.async_stream_infer("simple", _inputs(grpcclient), request_id=f"s{i}")
        assert [got.get(timeout=30) for _ in range(2)] == [None, None]
        c.stop_stream()
        c.close()
    finally:
        srv.stop()
    traces = _traces(json.loads(path.read_text()))
    assert sorted(t["head"]["request_id"] for t in traces.values()) == ["s0", "s1"]
    for t in traces.values():
        assert [n for n, _ in sorted(t["stamps"], key=lambda s: s[1])] == GRPC_NAMES


def test_rate_count_and_log_frequency(tmp_path):
    path = tmp_path / "t.json"
    srv = Server([REPO], f"--trace-file={path}", "--trace-level=TIMESTAMPS", "--trace-rate=2",
                 "--trace-count=2", "--trace-log-frequency=1")
    try:
        _http_infer(srv, 6)
        c = httpclient.InferenceServerClient(srv.url)
        assert c.get_trace_settings()["trace_count"] == "0"      # Triton reports what is left
        c.close()
    finally:
        srv.stop()
    # the 2nd and 4th requests were traced, one file each (log-frequency 1), no more
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("t.json."))
    assert files == ["t.json.0", "t.json.1"]
    ids = [list(_traces(json.loads((tmp_path / f).read_text()))) for f in files]
    assert ids == [[1], [2]]
    assert not path.read_text()          # nothing left for the exit file


def test_settings_api_changes_what_is_recorded(tmp_path):
    path = tmp_path / "api.json"
    srv = Server([REPO], f"--trace-config=triton,file={path}")      # level OFF
    try:
        _http_infer(srv)                                            # not traced
        c = httpclient.InferenceServerClient(srv.url)
        c.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"], "trace_rate": "1"})
        _http_infer(srv)                                            # traced: id 1
        g = grpcclient.InferenceServerClient(srv.grpc_url)
        g.update_trace_settings("simple", {"trace_level": ["OFF"]})  # per-model override
        _grpc_infer(srv)                                            # not traced
        _http_infer(srv)                                            # not traced
        g.update_trace_settings("simple", {"trace_level": None})     # back to the global one
        _grpc_infer(srv)                                            # traced: id 2
        c.close()
        g.close()
    finally:
        srv.stop()
    traces = _traces(json.loads(path.read_text()))
    assert sorted(traces) == [1, 2]
    assert traces[2]["stamps"][0][0] == "GRPC_WAITREAD_START"


def test_bad_trace_config_is_refused_at_start(tmp_path):
    import subprocess
    import sys
    for arg, text in (("--trace-config=triton,bogus=1", "unknown --trace-config setting 'bogus'"),
                      ("--trace-config=level=loud", "invalid value for trace level option"),
                      ("--trace-config=level=TENSORS", "TENSORS is not supported by the "
                       "opentelemetry trace mode")):
        proc = subprocess.run([sys.executable, "-m", "tritond.cli", "--model-repository",
                               str(REPO), arg, f"--trace-config=triton,file={tmp_path}/x",
                               *(["--trace-config=mode=opentelemetry"] if "TENSORS" in arg
                                 else [])],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and text in proc.stderr, proc.stderr


# ------------------------------------------------------------------ OpenTelemetry

class _Receiver(http.server.ThreadingHTTPServer):
    """A real OTLP/HTTP receiver: decodes each ExportTraceServiceRequest it is posted."""

    def __init__(self):
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        spans, pb = [], trace_service_pb2

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = pb.ExportTraceServiceRequest.FromString(body)
                for rs in req.resource_spans:
                    res = {a.key: a.value.string_value for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        spans.extend((res, s) for s in ss.spans)
                out = pb.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.spans = spans
        threading.Thread(target=self.serve_forever, daemon=True).start()


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _parent(span_id: str) -> dict:
    return {"traceparent": f"00-{TRACE_ID}-{span_id}-01"}


@pytest.mark.timeout(180)
def test_opentelemetry_spans_reach_an_otlp_receiver():
    pytest.importorskip("opentelemetry.sdk")
    rx = _Receiver()
    url = f"http://127.0.0.1:{rx.server_address[1]}/v1/traces"
    # rate=0: only requests with a propagated context are traced (Triton's rule)
    srv = Server([REPO], "--trace-config=mode=opentelemetry", "--trace-config=level=TIMESTAMPS",
                 "--trace-config=rate=0", f"--trace-config=opentelemetry,url={url}",
                 "--trace-config=opentelemetry,resource=service.name=tritond-test",
                 "--trace-config=opentelemetry,bsp_schedule_delay=50")
    try:
        _http_infer(srv, headers=_parent("00f067aa0ba902b7"))
        _grpc_infer(srv, headers=_parent("00f067aa0ba902b8"))
        _http_infer(srv)                                    # no context: not traced
        end = time.monotonic() + 60
        while len(rx.spans) < 6 and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        srv.stop()
        rx.shutdown()
    spans = [s for _, s in rx.spans]
    assert len(spans) == 6 and {r["service.name"] for r, _ in rx.spans} == {"tritond-test"}
    assert {s.trace_id.hex() for s in spans} == {TRACE_ID}
    roots = [s for s in spans if s.name == "InferRequest"]
    assert sorted(s.parent_span_id.hex() for s in roots) == ["00f067aa0ba902b7",
                                                              "00f067aa0ba902b8"]
    for root in roots:
        model = next(s for s in spans if s.parent_span_id == root.span_id)
        compute = next(s for s in spans if s.parent_span_id == model.span_id)
        assert model.name == "simple" and compute.name == "compute"
        attrs = {a.key: a.value for a in model.attributes}
        assert attrs["triton.model_name"].string_value == "simple"
        assert attrs["triton.model_version"].int_value == 1
        assert [e.name for e in model.events] == ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
        assert [e.name for e in compute.events] == ["COMPUTE_START", "COMPUTE_INPUT_END",
                                                     "COMPUTE_OUTPUT_START", "COMPUTE_END"]
        assert root.start_time_unix_nano <= model.start_time_unix_nano <= \
            compute.start_time_unix_nano <= compute.end_time_unix_nano <= \
            model.end_time_unix_nano <= root.end_time_unix_nano
    events = {e.name for r in roots for e in r.events}
    assert {"HTTP_RECV_START", "HTTP_SEND_END", "GRPC_WAITREAD_START", "GRPC_SEND_END"} <= events


def test_two_frontends_trace_into_their_own_files(tmp_path):
    """--frontend-processes 2: each frontend samples and writes its own file; a settings
    update through one reaches both (SettingsUpdate)."""
    path = tmp_path / "f.json"
    srv = Server([REPO], "--frontend-processes=2", f"--trace-config=triton,file={path}",
                 "--trace-config=rate=1")                               # level OFF
    try:
        c = httpclient.InferenceServerClient(srv.url)
        c.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
        c.close()
        for _ in range(12):               # a connection each: SO_REUSEPORT spreads them
            _http_infer(srv)
        for _ in range(4):
            _grpc_infer(srv)
    finally:
        srv.stop()
    files = [p for p in (path, tmp_path / "f.json.frontend1") if p.exists() and p.read_text()]
    heads = [o for p in files for o in json.loads(p.read_text()) if "model_name" in o]
    assert len(heads) == 16               # every request, whichever frontend served it
