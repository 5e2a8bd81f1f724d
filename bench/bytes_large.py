"""Very large BYTES tensors (10k to 10M short elements) through an identity Python model.

    .venv/bin/python bench/bytes_large.py                      # starts a tritond of its own
    .venv/bin/python bench/bytes_large.py --sizes 10000,100000 --runs 2 --cases grpc-raw
    .venv/bin/python bench/bytes_large.py --inprocess          # the codecs alone, no server

End to end: one request at a time to ``bytes_identity`` (``dims: [-1]``, the model
returns ``pb_utils.Tensor("OUTPUT0", input.as_numpy())``) over gRPC with the input in
``raw_input_contents`` and in ``contents.bytes_contents`` (tritonclient sends the former
by default; both are what a client may send), HTTP with the binary tensor extension,
and HTTP JSON. Seconds per request, each run printed (the first run is verified against
the input; the client's own decoding is not timed: the answer is read as bytes).

``--inprocess`` times the per-element steps one at a time, in this process: the gRPC
request's decode (``ModelInferRequest`` bytes -> tritond's input bytes, both encodings),
the frontend's BYTES check, the Python backend's ``as_numpy()`` (parse into an object
array) and ``pb_utils.Tensor(name, np.array(..., dtype=object))`` serialisation of fresh
elements, and the HTTP JSON answer's encoding. Elements are 1 to 16 bytes (a cycle of
lengths, every byte value; 0 to 15 bytes, empty strings included, with ``--empty``).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import struct
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import bytes_echo  # noqa: E402  (a sibling script: its echo model, written as bytes_identity)

GRPC_MAX = (1 << 31) - 1


def elements(n: int, empty: bool = False, text: bool = False) -> list[bytes]:
    """``n`` elements of 1 to 16 bytes (0 to 15 with ``empty``); ``text``: printable ASCII
    (HTTP JSON carries strings), else every byte value, NULs included."""
    pool = bytes(range(32, 127)) * 2 if text else bytes(range(256))
    lo = 0 if empty else 1
    return [pool[i % 150:i % 150 + lo + i % 16] for i in range(n)]


def serialized(els: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in els)


# ------------------------------------------------------------------ end to end

def grpc_case(url: str, els: list[bytes], raw: bool):
    import grpc
    from tritonclient.grpc import service_pb2
    req = service_pb2.ModelInferRequest(model_name="bytes_identity")
    t = req.inputs.add(name="INPUT0", datatype="BYTES")
    t.shape.append(len(els))
    if raw:
        req.raw_input_contents.append(serialized(els))
    else:
        t.contents.bytes_contents.extend(els)
    payload = req.SerializeToString()
    ch = grpc.insecure_channel(url, options=[("grpc.max_send_message_length", GRPC_MAX),
                                             ("grpc.max_receive_message_length", GRPC_MAX)])
    rpc = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    want = serialized(els)

    def call(verify: bool) -> None:
        data = rpc(payload, timeout=600)
        if verify:
            resp = service_pb2.ModelInferResponse.FromString(data)
            assert resp.raw_output_contents[0] == want, "gRPC answer differs"
    return call, ch.close


def http_case(url: str, els: list[bytes], binary: bool):
    want = serialized(els)
    if binary:
        head = json.dumps({"inputs": [{"name": "INPUT0", "shape": [len(els)], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": len(want)}}],
                           "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]})
        body = head.encode() + want
        headers = {"Content-Type": "application/octet-stream",
                   "Inference-Header-Content-Length": str(len(head))}
    else:
        body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [len(els)], "datatype": "BYTES",
                                       "data": [e.decode() for e in els]}],
                           "outputs": [{"name": "OUTPUT0",
                                        "parameters": {"binary_data": False}}]}).encode()
        headers = {"Content-Type": "application/json"}
    host, port = url.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def call(verify: bool) -> None:
        conn.request("POST", "/v2/models/bytes_identity/infer", body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data[:300]!r}")
        if not verify:
            return
        if binary:
            hlen = int(r.getheader("Inference-Header-Content-Length"))
            assert data[hlen:] == want, "HTTP binary answer differs"
        else:
            got = json.loads(data)["outputs"][0]["data"]
            assert got == [e.decode() for e in els], "HTTP JSON answer differs"
    return call, conn.close


CASES = {"grpc-raw": lambda a, els: grpc_case(a.grpc_url, els, True),
         "grpc-contents": lambda a, els: grpc_case(a.grpc_url, els, False),
         "http-binary": lambda a, els: http_case(a.url, els, True),
         "http-json": lambda a, els: http_case(a.url, els, False)}


def cpu_seconds(sid: int | None) -> dict:
    """CPU seconds used so far by each process of session ``sid`` (the tritond we
    started: its processes), by process title; {} when the server is not ours."""
    if sid is None:
        return {}
    out: dict = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
            title = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) != sid:           # field 6 of stat: the session id
            continue
        role = title.split()[1] if title.startswith("tritond:") else "parent"
        out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def end_to_end(a) -> None:
    print(f"{'case':<14} {'elements':>9} runs: wall s [CPU s: frontend/worker/other server processes, client]")
    for n in a.sizes:
        for case in a.cases:
            els = elements(n, text=case == "http-json")
            try:
                call, close = CASES[case](a, els)
            except Exception as exc:  # noqa: BLE001 - one failed case is a row, not the end
                print(f"{case:<14} {n:>9} FAILED: {exc}"[:200], flush=True)
                continue
            times = []
            try:
                for i in range(a.runs):
                    before = cpu_seconds(a.sid)
                    c0, t0 = time.process_time(), time.perf_counter()
                    call(i == 0)
                    times.append(time.perf_counter() - t0)
                    client = time.process_time() - c0
                    after = cpu_seconds(a.sid)
                    if after:
                        used = {k: v - before.get(k, 0.0) for k, v in after.items()}
                        fe, wk = used.pop("frontend", 0.0), used.pop("worker", 0.0)
                        times[-1] = (f"{times[-1]:.3f} [{fe:.2f}/{wk:.2f}/"
                                     f"{sum(used.values()):.2f} client {client:.2f}]")
            except Exception as exc:  # noqa: BLE001
                times.append(f"FAILED: {type(exc).__name__}: {str(exc)[:120]}")
            finally:
                close()
            print(f"{case:<14} {n:>9} " + " ".join(
                f"{t:.3f}" if isinstance(t, float) else t for t in times), flush=True)


# ------------------------------------------------------------------ in process

def _best(fn, runs: int, number: int) -> float:
    """Seconds per call of ``fn``: the best of ``runs`` timings of ``number`` calls each."""
    ts = []
    for _ in range(runs):              # CPU time: steadier than the wall on a shared host
        t0 = time.thread_time()
        for _ in range(number):
            fn()
        ts.append((time.thread_time() - t0) / number)
    return min(ts)


def in_process(a) -> None:
    from tritonclient.grpc import service_pb2
    from tritond.frontend.grpc import wire
    from tritond.frontend.validate import check_bytes
    from tritond.shm import dtypes
    from tritond.frontend.http.tensors import bytes_to_json, json_to_bytes
    print(f"{'step':<30} {'elements':>9} CPU ms per call (best of {a.runs} x {a.number})")
    for n in a.sizes:
        els = elements(n, empty=a.empty)
        raw = serialized(els)
        steps = {}
        for label, use_raw in (("grpc decode raw", True), ("grpc decode contents", False)):
            req = service_pb2.ModelInferRequest(model_name="m")
            t = req.inputs.add(name="INPUT0", datatype="BYTES")
            t.shape.append(n)
            if use_raw:
                req.raw_input_contents.append(raw)
            else:
                t.contents.bytes_contents.extend(els)
            wire_bytes = req.SerializeToString()
            steps[label] = lambda w=wire_bytes: wire.decode(w)
        steps["frontend check_bytes"] = lambda: check_bytes("m", "INPUT0", raw, n)
        steps["as_numpy (parse)"] = lambda: dtypes.deserialize_bytes(raw, n)
        fresh = np.array([bytes(bytearray(e)) for e in els], dtype=object)
        steps["Tensor(...) (serialise)"] = lambda: dtypes.serialize_bytes(fresh)
        text = elements(n, text=True)
        traw = serialized(text)
        steps["http json answer"] = lambda: bytes_to_json("OUTPUT0", "BYTES", [n], traw)
        strs = [e.decode() for e in text]
        steps["http json request"] = lambda: json_to_bytes("INPUT0", "BYTES", [n], strs)
        for name, fn in steps.items():
            try:
                print(f"{name:<30} {n:>9} {_best(fn, a.runs, a.number) * 1e3:.4f}", flush=True)
            except Exception as exc:  # noqa: BLE001
                print(f"{name:<30} {n:>9} FAILED: {type(exc).__name__}: {exc}"[:200], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="HTTP host:port (default: start a tritond)")
    ap.add_argument("--grpc-url", help="gRPC host:port")
    ap.add_argument("--sizes", default="10000,100000,1000000,10000000")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--inprocess", action="store_true")
    ap.add_argument("--number", type=int, default=1,
                    help="--inprocess: calls per timing (e.g. 2000 for 1-element tensors)")
    ap.add_argument("--empty", action="store_true",
                    help="--inprocess: elements of 0 to 15 bytes (empty ones too)")
    a = ap.parse_args()
    a.sizes = [int(s) for s in a.sizes.split(",")]
    a.cases = a.cases.split(",")
    if a.inprocess:
        in_process(a)
        return
    server = a.sid = None
    if a.url is None:
        from tests.server import Server
        repo = bytes_echo.write_repo(pathlib.Path(tempfile.mkdtemp(prefix="bytes_large_")),
                                     "bytes_identity")
        server = Server((repo,), f"--http-max-input-size={1 << 31}")
        a.url, a.grpc_url, a.sid = server.url, server.grpc_url, server.proc.pid
    try:
        end_to_end(a)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
