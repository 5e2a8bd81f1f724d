"""CPU per request of grpcio server shapes serving a trivial raw-bytes echo.

    python bench/grpc_server_cost.py [--variants aio,sync4,...] [--conc 1,8,64]
                                     [--seconds 4] [--pairs 2] [--body FILE]

Issue 15: tritond's gRPC frontend spends most of its samples inside grpc.aio's
own core, not in the project's code. This isolates that cost: each variant is
a separate server process whose only handler answers
``/inference.GRPCInferenceService/ModelInfer`` with the request's bytes (no
protobuf), loaded by h2load (one HTTP/2 connection, ``-m`` concurrent streams,
as bench/vs_triton.sh does) with the add_sub ModelInfer body. Reported per
variant and concurrency: requests/s and the server process's user+system CPU
per request (``/proc/<pid>/stat``, all threads) plus its context switches per
request (``/proc/<pid>/task/*/status``). Variants run interleaved, ``--pairs``
rounds, because the host is shared: compare within a round.

Variants (``NAME[+knob...]``): ``aio`` (grpc.aio generic handler, tritond's
server before frontend/grpc/engine.py), ``aioreg`` (``add_registered_method_handlers``), ``uvloop`` (grpc.aio on
uvloop), ``syncN`` (``grpc.server`` with a ThreadPoolExecutor of N threads),
``rawcq`` (the floor: one Python thread driving cygrpc's completion queue directly),
``rawloop`` (that queue polled by a thread that wakes the asyncio loop once per
batch of events; ``+uv`` on uvloop), ``engine`` (tritond's ``CoreServer``, which
is ``rawloop`` made whole, on uvloop as the frontend runs it).
Knobs: ``nochannelz`` (grpc.enable_channelz 0), ``nobdp`` (grpc.http2.bdp_probe 0),
``mcr`` (maximum_concurrent_rpcs=1000), ``exp=a:b`` (GRPC_EXPERIMENTS), ``poll``
(GRPC_POLL_STRATEGY=poll).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
PATH = "/inference.GRPCInferenceService/ModelInfer"
HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


# ------------------------------------------------------------------ server side
def _echo(request, context):
    return request


async def _aecho(request, context):
    return request


def _options(knobs: list[str]) -> list:
    opts = []
    if "nochannelz" in knobs:
        opts.append(("grpc.enable_channelz", 0))
    if "nobdp" in knobs:
        opts.append(("grpc.http2.bdp_probe", 0))
    return opts


def serve_raw(port_file: str, knobs: list[str]) -> None:
    """The floor: grpcio's core driven by one Python thread on cygrpc's completion
    queue (what both grpc.server and grpc.aio are built on), no executor, no loop."""
    from grpc._cython import cygrpc
    cq = cygrpc.CompletionQueue()
    server = cygrpc.Server(tuple(_options(knobs)), False)
    server.register_completion_queue(cq)
    port = server.add_http2_port(b"127.0.0.1:0")
    server.start()
    pathlib.Path(port_file).write_text(str(port))
    new = object()
    server.request_call(cq, cq, new)
    while True:
        event = cq.poll()
        if event.tag is new:
            call = event.call
            server.request_call(cq, cq, new)
            call.start_server_batch((cygrpc.ReceiveMessageOperation(0),), call)
            call.start_server_batch((cygrpc.ReceiveCloseOnServerOperation(0),), None)
        elif event.tag is not None:           # the request's message: answer it
            call = event.tag
            call.start_server_batch((
                cygrpc.SendInitialMetadataOperation((), 0),
                cygrpc.SendMessageOperation(event.batch_operations[0].message(), 0),
                cygrpc.SendStatusFromServerOperation((), cygrpc.StatusCode.ok, "", 0)), None)


def serve_raw_loop(port_file: str, knobs: list[str]) -> None:
    """The shape tritond would need: one thread blocks on cygrpc's completion queue
    and hands each batch of events to the asyncio loop in one call_soon_threadsafe;
    the loop runs an ``async`` handler in a task per call and answers from there."""
    import asyncio
    import threading
    from grpc._cython import cygrpc
    if "uv" in knobs:
        import uvloop
        uvloop.install()
    cq = cygrpc.CompletionQueue()
    server = cygrpc.Server(tuple(_options(knobs)), False)
    server.register_completion_queue(cq)
    port = server.add_http2_port(b"127.0.0.1:0")
    server.start()
    new = object()

    async def answer(call, request):
        response = await _aecho(request, None)
        call.start_server_batch((
            cygrpc.SendInitialMetadataOperation((), 0),
            cygrpc.SendMessageOperation(response, 0),
            cygrpc.SendStatusFromServerOperation((), cygrpc.StatusCode.ok, "", 0)), None)

    pending = []
    armed = [False]     # a dispatch is scheduled and has not yet taken ``pending``

    def dispatch():
        armed[0] = False
        events = pending[:]
        del pending[:len(events)]
        for event in events:
            if event.tag is new:
                call = event.call
                server.request_call(cq, cq, new)
                call.start_server_batch((cygrpc.ReceiveMessageOperation(0),), call)
                call.start_server_batch((cygrpc.ReceiveCloseOnServerOperation(0),), None)
            elif event.tag is not None:
                loop.create_task(answer(event.tag, event.batch_operations[0].message()))

    def poll():
        # Events arriving while a dispatch is already scheduled ride along with it:
        # one loop wake-up per batch, not per event (grpc.aio writes a byte per event).
        while True:
            pending.append(cq.poll())
            if not armed[0]:
                armed[0] = True
                loop.call_soon_threadsafe(dispatch)

    async def main():
        global loop
        loop = asyncio.get_running_loop()
        server.request_call(cq, cq, new)
        threading.Thread(target=poll, daemon=True).start()
        pathlib.Path(port_file).write_text(str(port))
        await asyncio.Event().wait()
    asyncio.run(main())


def serve_engine(port_file: str, knobs: list[str]) -> None:
    """tritond's own server class (frontend/grpc/engine.py) on uvloop, as the frontend runs it."""
    import grpc
    import uvloop
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from tritond.frontend.grpc.engine import CoreServer

    async def main():
        handler = grpc.unary_unary_rpc_method_handler(_aecho)
        server = CoreServer(_options(knobs), [grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", {"ModelInfer": handler})])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        pathlib.Path(port_file).write_text(str(port))
        await asyncio.Event().wait()
    import asyncio
    uvloop.run(main())


def serve(variant: str, port_file: str) -> None:
    import grpc
    name, *knobs = variant.split("+")
    mcr = 1000 if "mcr" in knobs else None
    if name == "rawcq":
        serve_raw(port_file, knobs)
        return
    if name == "rawloop":
        serve_raw_loop(port_file, knobs)
        return
    if name == "engine":
        serve_engine(port_file, knobs)
        return
    if name.startswith("sync"):
        from concurrent import futures
        server = grpc.server(futures.ThreadPoolExecutor(int(name[4:])), options=_options(knobs), maximum_concurrent_rpcs=mcr)
        handler = grpc.unary_unary_rpc_method_handler(_echo)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", {"ModelInfer": handler})])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        pathlib.Path(port_file).write_text(str(port))
        server.wait_for_termination()
        return
    import asyncio
    if name == "uvloop":
        import uvloop
        uvloop.install()

    async def main():
        server = grpc.aio.server(options=_options(knobs), maximum_concurrent_rpcs=mcr)
        handlers = {"ModelInfer": grpc.unary_unary_rpc_method_handler(_aecho)}
        if name == "aioreg":
            server.add_registered_method_handlers("inference.GRPCInferenceService", handlers)
        else:
            server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
                "inference.GRPCInferenceService", handlers)])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        pathlib.Path(port_file).write_text(str(port))
        await server.wait_for_termination()
    asyncio.run(main())


# ------------------------------------------------------------------ load side
def cpu_us(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_US


def switches(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            text = open(f"/proc/{pid}/task/{task}/status").read()
        except FileNotFoundError:
            continue
        total += sum(int(v) for v in re.findall(r"ctxt_switches:\s+(\d+)", text))
    return total


def h2load(port: int, body: str, streams: int, seconds: float) -> int:
    cmd = ["h2load", "-c1", f"-m{streams}", "-t1", "-D", str(int(seconds)), "-d", body, *HEADERS,
           f"http://127.0.0.1:{port}{PATH}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
    if not m:
        raise RuntimeError(f"h2load: {out[-400:]}")
    if int(m.group(2)):
        print(f"  ! {m.group(2)} failed", file=sys.stderr)
    return int(m.group(1))


def measure(variant: str, concs: list[int], seconds: float, body: str) -> dict:
    name, *knobs = variant.split("+")
    env = dict(os.environ)
    for k in knobs:
        if k.startswith("exp="):
            env["GRPC_EXPERIMENTS"] = k[4:].replace(":", ",")
        if k == "poll":
            env["GRPC_POLL_STRATEGY"] = "poll"
    port_file = f"/tmp/grpc_server_cost.{os.getpid()}.port"
    pathlib.Path(port_file).unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", variant, port_file], env=env)
    try:
        for _ in range(200):
            if os.path.exists(port_file) and pathlib.Path(port_file).read_text():
                break
            time.sleep(0.05)
        port = int(pathlib.Path(port_file).read_text())
        h2load(port, body, 8, 1)                        # warm-up
        rows = {}
        for c in concs:
            cpu0, sw0, t0 = cpu_us(proc.pid), switches(proc.pid), time.monotonic()
            n = h2load(port, body, c, seconds)
            cpu1, sw1, t1 = cpu_us(proc.pid), switches(proc.pid), time.monotonic()
            rows[c] = (n / seconds, (cpu1 - cpu0) / max(n, 1), (sw1 - sw0) / max(n, 1),
                       (cpu1 - cpu0) / 1e6 / (t1 - t0))
        return rows
    finally:
        proc.terminate()
        proc.wait(10)
        pathlib.Path(port_file).unlink(missing_ok=True)


def add_sub_body() -> str:
    """A ModelInfer frame for add_sub (two FP32[16]) in raw_input_contents."""
    path = "/tmp/grpc_server_cost.body"
    if not os.path.exists(path):
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
        import struct
        from tritond.protos import grpc_service_pb2 as pb
        req = pb.ModelInferRequest(model_name="add_sub")
        for n in ("INPUT0", "INPUT1"):
            req.inputs.add(name=n, datatype="FP32", shape=[16])
            req.raw_input_contents.append(struct.pack("<16f", *range(16)))
        msg = req.SerializeToString()
        pathlib.Path(path).write_bytes(struct.pack(">BI", 0, len(msg)) + msg)
    return path


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--variants", default="aio,uvloop,sync1,sync2,sync4,sync8")
    ap.add_argument("--conc", default="1,8,64")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--body", default=None, help="a gRPC-framed request (default: add_sub)")
    a = ap.parse_args()
    body = a.body or add_sub_body()
    concs = [int(c) for c in a.conc.split(",")]
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load "
          f"{os.getloadavg()[0]:.1f}, body {os.path.getsize(body)} B")
    print("| round | variant | conc | req/s | CPU µs/req | ctx sw/req | server cores |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in range(1, a.pairs + 1):
        for v in a.variants.split(","):
            for c, (rps, us, sw, cores) in measure(v, concs, a.seconds, body).items():
                print(f"| {r} | {v} | {c} | {rps:,.0f} | {us:.1f} | {sw:.2f} | {cores:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
