"""Pipelines benchmark: a two-step ensemble and a BLS model, tritond vs Triton 2.51.

Run by ``bench/pipelines.sh`` with the anchors' Python (it has numpy and the
anchors' ``lib/`` on ``sys.path``) against servers started on
``bench/pipelines/models`` by the anchors' ``start_server.sh``. For each
server and each model (``preprocess`` and ``identity`` alone, the ensemble
``pipeline`` = preprocess -> identity, ``add_sub``, and ``bls`` = add_sub
through BLS) it runs wrk with JSON bodies at 8 and 64 connections and prints
one Markdown table: throughput, p50, the tritond/Triton ratio, and the
per-step overhead of a pipeline at one connection: mean latency of the
two-step ensemble minus that of its first model alone (what one more step
costs), and of ``bls`` minus ``add_sub`` alone (what one BLS call costs), in µs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

MODELS = {
    "preprocess": {"IN": np.arange(16, dtype=np.float32)},
    "identity": {"IN": np.arange(16, dtype=np.float32)},
    "pipeline": {"IN": np.arange(16, dtype=np.float32)},
    "add_sub": {"INPUT0": np.arange(16, dtype=np.float32), "INPUT1": np.ones(16, np.float32)},
    "bls": {"INPUT0": np.arange(16, dtype=np.float32), "INPUT1": np.ones(16, np.float32)},
}
CONCS = (1, 8, 64)      # 1: for the per-step overhead; 8 and 64: throughput


def body(model: str, path: str) -> str:
    doc = {"inputs": [{"name": n, "shape": [16], "datatype": "FP32", "data": a.tolist()}
                      for n, a in MODELS[model].items()]}
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def measure(port: int, work: str, duration: int, warmup: int) -> dict:
    import loadgen    # the anchors' lib/

    out = {}
    for model in MODELS:
        path = body(model, os.path.join(work, f"{model}.json"))
        for conc in CONCS:
            url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
            r = loadgen.wrk(url, path, conc, duration, warmup)
            out[f"{model}@{conc}"] = r
            print(f"  {model} c={conc}: {r['rps']:.0f}/s p50 {r['p50_ms']:.2f} ms"
                  f"{' errors ' + str(r['errors']) if r['errors'] else ''}", file=sys.stderr)
    return out


def overhead_us(res: dict, combined: str, parts: list[str], conc: int) -> float:
    """Mean latency (conc / rps) of ``combined`` minus that of its parts, in µs."""
    lat = {k: conc / res[f"{k}@{conc}"]["rps"] * 1e6 for k in [combined, *parts]}
    return lat[combined] - sum(lat[p] for p in parts)


def table(results: dict) -> str:
    kinds = list(results)
    lines = ["| model | conc | " + " | ".join(f"{k} req/s (p50 ms)" for k in kinds)
             + (" | tritond/Triton |" if len(kinds) == 2 else " |"),
             "|---|---|" + "---|" * (len(kinds) + (1 if len(kinds) == 2 else 0))]
    for model in MODELS:
        for conc in CONCS:
            cells = [f"{results[k][f'{model}@{conc}']['rps']:.0f} "
                     f"({results[k][f'{model}@{conc}']['p50_ms']:.2f})" for k in kinds]
            ratio = ""
            if len(kinds) == 2 and "triton" in results and "tritond" in results:
                key = f"{model}@{conc}"
                mine, theirs = results["tritond"][key]["rps"], results["triton"][key]["rps"]
                ratio = f" {mine / max(theirs, 1e-9):.2f}× |"
            lines.append(f"| {model} | {conc} | " + " | ".join(cells) + " |" + ratio)
    lines.append("")
    lines.append("| overhead (µs, mean latency) | conc | " + " | ".join(kinds) + " |")
    lines.append("|---|---|" + "---|" * len(kinds))
    for name, combined, parts in (("ensemble of 2 vs the single model", "pipeline",
                                   ["preprocess"]),
                                  ("BLS model vs add_sub alone", "bls", ["add_sub"])):
        for conc in CONCS[:1]:
            lines.append(f"| {name} | {conc} | " + " | ".join(
                f"{overhead_us(results[k], combined, parts, conc):.0f}" for k in kinds) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", action="append", required=True, help="KIND=PORT")
    ap.add_argument("--work", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--measure", action="store_true", help="measure one server, print JSON")
    ap.add_argument("--report", nargs="*", help="JSON files of --measure runs")
    args = ap.parse_args()
    if args.measure:
        kind, port = args.kind[0].split("=")
        print(f"=== {kind} ===", file=sys.stderr)
        print(json.dumps({kind: measure(int(port), args.work, args.duration, args.warmup)}))
        return
    results = {}
    for path in args.report or []:
        with open(path) as f:
            results.update(json.load(f))
    print(table(results))


if __name__ == "__main__":
    main()
