"""Decoupled streaming: responses/s for a model sending 100 small responses per request (gRPC).

    .venv/bin/python bench/decoupled.py                   # starts a tritond of its own
    .venv/bin/python bench/decoupled.py --write-repo /tmp/dec_repo   # only write the model
    .venv/bin/python bench/decoupled.py --grpc-url 127.0.0.1:8001    # any Triton-compatible
                                                          # server serving that repository

The model (``stream100``, Python backend, ``decoupled: true``; the same
``model.py`` for both servers) answers each request from ``execute`` with
``N`` (input, default 100) responses of one INT32 and then the final flag.
The client is ``tritonclient.grpc.aio``: one ModelStreamInfer stream with
``--concurrency`` requests in flight; a request counts when all its ``N``
responses came back, in order, each checked. Runs
``--duration`` seconds after a verified warm-up; prints one JSON line.
For Triton 2.51 (../shared/anchors: its Python backend), start it with
``--model-repository`` pointing at the ``--write-repo`` directory.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

MODEL = "stream100"
MODEL_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            n = int(pb_utils.get_input_tensor_by_name(request, "N").as_numpy()[0])
            for i in range(n):
                sender.send(pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUT", np.array([i], np.int32))]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''
CONFIG = f'''name: "{MODEL}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [ {{ name: "N" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
'''


def write_repo(repo: pathlib.Path) -> pathlib.Path:
    d = repo / MODEL
    (d / "1").mkdir(parents=True, exist_ok=True)
    (d / "1" / "model.py").write_text(MODEL_PY)
    (d / "config.pbtxt").write_text(CONFIG)
    return repo


async def run(url: str, n: int, concurrency: int, duration: float) -> dict:
    import tritonclient.grpc.aio as grpcclient

    client = grpcclient.InferenceServerClient(url)
    inp = grpcclient.InferInput("N", [1], "INT32")
    inp.set_data_from_numpy(np.array([n], np.int32))
    state = {"sent": 0, "done": 0, "responses": 0, "errors": 0, "stop": False}
    seen: dict[str, int] = {}
    slots = asyncio.Queue()
    for _ in range(concurrency):
        slots.put_nowait(None)

    async def requests():
        while not state["stop"]:
            await slots.get()
            if state["stop"]:
                break
            rid = str(state["sent"])
            state["sent"] += 1
            seen[rid] = 0
            yield {"model_name": MODEL, "inputs": [inp], "request_id": rid}

    async def consume(until: float):
        async for result, error in client.stream_infer(requests()):
            if error is not None:
                state["errors"] += 1
                slots.put_nowait(None)
                continue
            resp = result.get_response()
            if int(result.as_numpy("OUT")[0]) != seen[resp.id]:
                state["errors"] += 1
            seen[resp.id] += 1
            state["responses"] += 1
            # The bare final flag is not sent (no triton_enable_empty_final_response,
            # which tritonclient.grpc.aio cannot set): the n-th response completes it.
            if seen[resp.id] == n:
                del seen[resp.id]
                state["done"] += 1
                slots.put_nowait(None)
                if time.monotonic() >= until:
                    state["stop"] = True
                    if not seen:
                        break

    await asyncio.wait_for(consume(time.monotonic()), 60)     # warm-up: one round
    assert state["errors"] == 0 and state["done"] and \
        state["responses"] == n * state["done"], state
    state.update(sent=0, done=0, responses=0, stop=False)
    seen.clear()
    for _ in range(concurrency - slots.qsize()):
        slots.put_nowait(None)
    t0 = time.monotonic()
    await asyncio.wait_for(consume(t0 + duration), duration + 120)
    elapsed = time.monotonic() - t0
    await client.close()
    return {"bench": "decoupled", "url": url, "responses_per_request": n,
            "concurrency": concurrency, "seconds": round(elapsed, 3),
            "requests": state["done"], "responses": state["responses"],
            "errors": state["errors"],
            "responses_per_s": round(state["responses"] / elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grpc-url", help="gRPC host:port (default: start a tritond)")
    ap.add_argument("--write-repo", help="only write the model repository there and exit")
    ap.add_argument("--responses", type=int, default=100, help="responses per request")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    args = ap.parse_args()
    if args.write_repo:
        print(write_repo(pathlib.Path(args.write_repo)))
        return
    server = None
    url = args.grpc_url
    if url is None:
        from tests.server import Server
        repo = write_repo(pathlib.Path(tempfile.mkdtemp(prefix="tritond-bench-dec-")))
        server = Server((repo,))
        url = server.grpc_url
    try:
        print(json.dumps(asyncio.run(run(url, args.responses, args.concurrency,
                                         args.duration))))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
