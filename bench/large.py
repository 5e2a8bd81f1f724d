"""Large FP32 tensors through an identity model, one request at a time (anchors scenario d).

    .venv/bin/python bench/large.py                       # starts a tritond of its own
    .venv/bin/python bench/large.py --url 127.0.0.1:8000 --grpc-url 127.0.0.1:8001 \\
        --model identity                                  # any Triton-compatible server

Cases at 1, 16 and 64 MiB: HTTP binary tensors, gRPC raw_input_contents, and
system shared memory (input and output regions registered, the data written
once before timing; a request carries region names only). GB/s = tensor
bytes per request / seconds per request, the same measure as
``../shared/anchors/lib/large.py``; numpy memcpy of the same size, measured
in-process first, is the limit. Each case runs ``--budget`` seconds (after one
verified warm-up call), so the whole run is bounded.
"""
from __future__ import annotations

import argparse
import http.client
import pathlib
import statistics
import sys
import time
import uuid

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

GRPC_MAX = 1 << 30


def memcpy_gbps(nbytes: int, budget: float = 0.5) -> float:
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)                      # fault the pages in first
    ts, end = [], time.perf_counter() + budget
    while len(ts) < 5 or time.perf_counter() < end:
        t0 = time.perf_counter()
        np.copyto(dst, src)
        ts.append(time.perf_counter() - t0)
    return nbytes / statistics.median(ts) / 1e9


def http_case(url: str, model: str, x: np.ndarray):
    import tritonclient.http as httpclient
    inp = httpclient.InferInput("INPUT0", [x.size], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)
    body, hlen = httpclient.InferenceServerClient.generate_request_body([inp], [out])
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": str(hlen)}
    host, port = url.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=300)

    def call(verify: bool) -> None:
        conn.request("POST", f"/v2/models/{model}/infer", body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
        if verify:
            res = httpclient.InferenceServerClient.parse_response_body(
                data, header_length=int(r.getheader("Inference-Header-Content-Length")))
            assert np.array_equal(res.as_numpy("OUTPUT0").reshape(-1), x)
    return call, conn.close


def grpc_case(url: str, model: str, x: np.ndarray):
    import grpc
    from tritonclient.grpc import service_pb2
    req = service_pb2.ModelInferRequest(model_name=model)
    t = req.inputs.add(name="INPUT0", datatype="FP32")
    t.shape.append(x.size)
    req.raw_input_contents.append(x.tobytes())
    payload = req.SerializeToString()
    ch = grpc.insecure_channel(url, options=[("grpc.max_send_message_length", GRPC_MAX),
                                             ("grpc.max_receive_message_length", GRPC_MAX)])
    rpc = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")   # bytes in, bytes out

    def call(verify: bool) -> None:
        data = rpc(payload, timeout=300)
        if verify:
            resp = service_pb2.ModelInferResponse.FromString(data)
            assert np.array_equal(np.frombuffer(resp.raw_output_contents[0], np.float32), x)
    return call, ch.close


def shm_case(url: str, model: str, x: np.ndarray):
    import tritonclient.http as httpclient
    import tritonclient.utils.shared_memory as shm
    client = httpclient.InferenceServerClient(url, network_timeout=300, connection_timeout=300)
    tag = uuid.uuid4().hex[:8]
    names = (f"bench_in_{tag}", f"bench_out_{tag}")
    handles = [shm.create_shared_memory_region(n, "/" + n, x.nbytes) for n in names]
    shm.set_shared_memory_region(handles[0], [x])

    def cleanup() -> None:
        for n in names:
            try:
                client.unregister_system_shared_memory(n)
            except Exception:  # noqa: BLE001 - best effort; the segments go regardless
                pass
        for h in handles:
            shm.destroy_shared_memory_region(h)
        client.close()
    try:
        for n in names:
            client.register_system_shared_memory(n, "/" + n, x.nbytes)
    except BaseException:
        cleanup()
        raise
    inp = httpclient.InferInput("INPUT0", [x.size], "FP32")
    inp.set_shared_memory(names[0], x.nbytes)
    out = httpclient.InferRequestedOutput("OUTPUT0")
    out.set_shared_memory(names[1], x.nbytes)

    def call(verify: bool) -> None:
        client.infer(model, [inp], outputs=[out])
        if verify:
            assert np.array_equal(shm.get_contents_as_numpy(handles[1], np.float32, [x.size]), x)
    return call, cleanup


CASES = {"http-binary": (http_case, "url"), "grpc": (grpc_case, "grpc_url"),
         "shm": (shm_case, "url")}


def run(case: str, url: str, model: str, mib: int, budget: float) -> tuple[float, float, int]:
    """(GB/s, p50 ms, requests) for one case."""
    x = np.random.default_rng(mib).standard_normal((mib << 20) // 4, dtype=np.float32)
    call, cleanup = CASES[case][0](url, model, x)
    try:
        call(True)
        durs, end = [], time.perf_counter() + budget
        while len(durs) < 3 or time.perf_counter() < end:
            t0 = time.perf_counter()
            call(False)
            durs.append(time.perf_counter() - t0)
    finally:
        cleanup()
    p50 = statistics.median(durs)
    return x.nbytes / p50 / 1e9, p50 * 1e3, len(durs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="HTTP host:port (default: start a tritond)")
    ap.add_argument("--grpc-url", help="gRPC host:port")
    ap.add_argument("--model", default="identity_fp32")
    ap.add_argument("--sizes", default="1,16,64", help="MiB, comma-separated")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--budget", type=float, default=3.0, help="seconds per case")
    a = ap.parse_args()
    server = None
    if a.url is None:
        from tests.server import Server
        # 64 MiB + the JSON header exceeds Triton's default 64 MiB HTTP body limit.
        server = Server((pathlib.Path(__file__).resolve().parents[1] / "model_repository",),
                        f"--http-max-input-size={1 << 30}", "--allow-client-shm=true")
        a.url, a.grpc_url = server.url, server.grpc_url
    try:
        print(f"{'case':<12} {'MiB':>4} {'GB/s':>7} {'p50 ms':>8} {'n':>5} {'memcpy GB/s':>12} "
              f"{'ratio':>6}")
        for mib in (int(s) for s in a.sizes.split(",")):
            limit = memcpy_gbps(mib << 20)
            for case in a.cases.split(","):
                url = getattr(a, CASES[case][1])
                if url is None:
                    print(f"{case:<12} {mib:>4}  skipped: no {CASES[case][1]}")
                    continue
                try:
                    gbps, p50, n = run(case, url, a.model, mib, a.budget)
                except Exception as exc:  # noqa: BLE001 - one failed case is a row, not the end
                    print(f"{case:<12} {mib:>4}  FAILED: {type(exc).__name__}: {exc}"[:200])
                    continue
                print(f"{case:<12} {mib:>4} {gbps:>7.2f} {p50:>8.2f} {n:>5} {limit:>12.2f} "
                      f"{gbps / limit:>6.2f}", flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
