"""Ratio table tritond / Triton from the anchors harness's JSONL records.

    python bench/compare.py results/triton-TS.jsonl results/tritond-TS.jsonl

One row per (scenario, concurrency): both throughputs, throughput ratio
(tritond ÷ Triton, > 1 is better) and p50 ratio (tritond ÷ Triton, < 1 is better).
"""
from __future__ import annotations

import json
import sys


def load(path: str) -> dict:
    rows = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows[(r["scenario"], r["conc"])] = r
    return rows


def cell(r) -> str:
    if r is None:
        return "—"
    if r.get("errors") is None or r.get("value") is None:
        return "n/a" if r.get("errors") is None else f"failed ({r.get('notes', '')[:60]})"
    v = r["value"]
    text = f"{v:.3g} {r['unit']}" if r["unit"] == "GB/s" else f"{v:,.0f} {r['unit']}"
    if r.get("p50_ms") is not None:
        text += f" (p50 {r['p50_ms']:.2f} ms)"
    if r.get("errors"):
        text += f" ⚠ {r['errors']} err"
    return text


def ratio(a, b, key) -> str:
    try:
        return f"{b[key] / a[key]:.2f}×"
    except (TypeError, KeyError, ZeroDivisionError):
        return "—"          # a failed or missing measurement on either side


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    triton, ours = load(argv[0]), load(argv[1])
    print("| scenario | conc | Triton | tritond | throughput ratio | p50 ratio |")
    print("|---|---:|---|---|---:|---:|")
    for key in list(triton) + [k for k in ours if k not in triton]:
        a, b = triton.get(key), ours.get(key)
        if key[0].startswith("limit"):
            continue
        print(f"| {key[0]} | {key[1]} | {cell(a)} | {cell(b)} | "
              f"{ratio(a, b, 'value') if a and b else '—'} | {ratio(a, b, 'p50_ms') if a and b else '—'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
