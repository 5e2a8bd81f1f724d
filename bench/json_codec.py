"""In-process cost of the HTTP JSON codec per infer request, without servers.

    <venv>/bin/python bench/json_codec.py [--elements 256] [--repeat 100] [--number 500]

Times (best of ``--repeat`` × ``--number``, the thread's CPU clock: steadier than the
wall clock on a shared host) what the HTTP frontend pays
for a JSON body with one ``[1, N]`` tensor each way, as the anchors' mlp_batched
request (``--elements 256``, FP32): ``codec.decode_request`` of the body (bodies as
the anchors' ``bodies.py`` writes them: ``json.dumps`` of the values), for FP32,
INT32 and BOOL data, and ``codec.encode_result`` of an FP32 output read from an
mmap (as a shm view), i.e. the float formatting of the JSON answer. The script
imports whichever ``tritond`` the interpreter has: run it with one checkout's venv,
then another's, alternating, for an A/B that whole-server runs on a shared host
cannot resolve (issue 15 item 2).
"""
from __future__ import annotations

import argparse
import json
import mmap
import time
import timeit

import numpy as np
from tritond.frontend.http import codec
from tritond.frontend.types import InferResult, OutputTensor


def body(datatype: str, values: list) -> bytes:
    return json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, len(values)],
                                   "datatype": datatype, "data": values}]}).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--number", type=int, default=500)
    args = ap.parse_args()
    n = args.elements
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    bodies = {"FP32": body("FP32", x.tolist()),
              "INT32": body("INT32", list(range(-n // 2, n - n // 2))),
              "BOOL": body("BOOL", [bool(i % 3) for i in range(n)])}
    area = mmap.mmap(-1, max(4 * n, mmap.PAGESIZE))
    area[:4 * n] = x.tobytes()
    result = InferResult("mlp_batched", "1", "", {},
                         [OutputTensor("OUTPUT0", "FP32", [1, n], memoryview(area)[:4 * n], None)])

    def best(fn) -> float:
        return min(timeit.repeat(fn, timer=time.thread_time, number=args.number,
                                 repeat=args.repeat)) / args.number * 1e6

    for dt, b in bodies.items():
        us = best(lambda b=b: codec.decode_request(b, None, "mlp_batched", ""))
        print(f"decode_request {dt} x{n}: {us:.2f} µs")
    print(f"encode_result FP32 x{n}: {best(lambda: codec.encode_result(result, False)):.2f} µs")


if __name__ == "__main__":
    main()
