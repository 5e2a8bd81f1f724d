"""A trace's children (``Response.children``) in Triton's trace JSON.

Triton gives a child trace (an ensemble step, a BLS call) the next id of the
same counter as every trace and writes it, with its parent's, when the whole
group is released: ``{"id", "model_name", "model_version"[, "request_id"],
"parent_id"}`` then one ``{"id", "timestamps": [...]}`` object per activity
(src/tracer.cc TraceActivity). tritond numbers them when the response was sent
(``Tracer.finish``), so a child's id is above its parent's, as in Triton.
"""
from __future__ import annotations

import json


def number(trace, next_id: int) -> int:
    """Give each child of ``trace`` a trace id; the counter's next value."""
    for child in trace.children:
        trace.ids[child.ref] = next_id
        next_id += 1
    return next_id


def parent_id(trace, child) -> int:
    return trace.ids[child.parent] if child.parent else trace.id


def child_objects(trace) -> list[str]:
    """The JSON objects of every child of ``trace`` (its setting's level applies)."""
    out = []
    stamps = "TIMESTAMPS" in trace.setting.level
    for child in trace.children:
        cid = trace.ids[child.ref]
        head = {"id": cid, "model_name": child.model, "model_version": child.version}
        if child.request_id:
            head["request_id"] = child.request_id
        head["parent_id"] = parent_id(trace, child)
        out.append(json.dumps(head, separators=(",", ":")))
        if stamps:
            for name, ns in sorted(child.stamps, key=lambda s: s[1]):
                out.append(f'{{"id":{cid},"timestamps":[{{"name":"{name}","ns":{ns}}}]}}')
    return out
