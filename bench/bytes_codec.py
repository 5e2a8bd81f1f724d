"""In-process cost of one BYTES tensor on its way through tritond, without servers.

    python bench/bytes_codec.py [--elements 1000] [--fixed] [--pad 0] [--cpu]

Times, best of 7 repeats of 200, the three per-element steps a BYTES request pays:
the frontend's framing check (``frontend.validate.check_bytes``, which also returns the
length table), the worker's parse into an object array (``shm.dtypes.deserialize_bytes``
with that table, as a staged input has it; "parse, no table" is what a client shm
input pays: ``short_table`` or the walk, then the split; not in the total) and the output's serialisation
(``shm.dtypes.serialize_bytes``) of new elements; "serialise echo" (not in the total)
serialises the parsed input array itself, as an echo model's output does. Run it under two checkouts' venvs to compare them
(issue 15 item 5); elements are ``element-<i>`` (9-12 bytes) or, with ``--fixed``, 14 bytes,
followed by ``--pad`` more bytes each. ``--cpu`` times with the thread's CPU clock instead of
the wall clock (steadier on a shared host).
"""
from __future__ import annotations

import argparse
import struct
import time
import timeit

import numpy as np
from tritond.frontend.validate import check_bytes
from tritond.shm import dtypes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", type=int, default=1000)
    ap.add_argument("--fixed", action="store_true")
    ap.add_argument("--pad", type=int, default=0, help="bytes added to every element")
    ap.add_argument("--cpu", action="store_true", help="time with the thread's CPU clock")
    args = ap.parse_args()
    n = args.elements
    els = [(f"element-{i:06d}" if args.fixed else f"element-{i}").encode() + b"x" * args.pad
           for i in range(n)]
    view = memoryview(bytearray(b"".join(struct.pack("<I", len(e)) + e for e in els)))
    arr = dtypes.deserialize_bytes(view, n)
    table = check_bytes("m", "IN", view, n)
    fresh = np.array([bytes(bytearray(e)) for e in els], dtype=object)   # not parsed: no reuse
    steps = {"check (frontend)": lambda: check_bytes("m", "IN", view, n),
             # (under an older checkout check_bytes returns None: the plain parse)
             "parse (worker)": (lambda: dtypes.deserialize_bytes(view, n, table)) if table
             is not None else (lambda: dtypes.deserialize_bytes(view, n)),
             "parse, no table": lambda: dtypes.deserialize_bytes(view, n),
             "serialise (worker)": lambda: dtypes.serialize_bytes(fresh),
             "serialise echo": lambda: dtypes.serialize_bytes(arr)}
    total = 0.0
    timer = time.thread_time if args.cpu else time.perf_counter
    for name, fn in steps.items():
        us = min(timeit.repeat(fn, number=200, repeat=7, timer=timer)) / 200 * 1e6
        total += us if name not in ("serialise echo", "parse, no table") else 0.0
        print(f"{name:20s} {us:8.1f} µs")
    print(f"{'all three':20s} {total:8.1f} µs  ({n} {'fixed-width' if args.fixed else 'variable'} elements)")


if __name__ == "__main__":
    main()
