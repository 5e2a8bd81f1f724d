"""A traced ensemble request in the pure scheduler core: each step request is a child
trace, the final Response carries the ensemble's QUEUE_START and every child."""
from __future__ import annotations

import msgspec

from tritond.scheduler import wire

from tests.scheduler.helpers import dispatches, full_request, replies, table
from tests.scheduler.test_ensembles import (ADD_SUB, CHAIN, IN, _answer, _core, _done,
                                            _ensemble, _run, _step)

_view = msgspec.msgpack.Decoder(wire.RequestView).decode


def _traced(rid=1, model="chain", request_id="r-7"):
    req = full_request(rid, model=model, inputs=("INPUT0", "INPUT1"))
    req.request_id, req.trace = request_id, [41]       # the frontend's trace id
    return _view(msgspec.msgpack.encode(req))


def _worker_stamps(step, base):
    """What a worker answers for a traced request: QUEUE_START and four COMPUTE_*."""
    return [step.trace[1], base, base + 1, base + 2, base + 3]


def test_each_step_is_a_child_and_the_final_response_carries_them():
    core = _core()
    out = _run(core, core.add(_traced(), 5))
    (d,) = dispatches(out)
    step0 = d.execute.requests[0]
    assert step0.trace == [1, 5]                  # child ref 1, the core's QUEUE_START
    resp = _answer(step0, "w0", "/s", [0, 64])
    resp.trace = _worker_stamps(step0, 10)
    out = _done(core, d, resp)
    (d,) = dispatches(out)
    step1 = d.execute.requests[0]
    assert step1.trace[0] == 2
    assert step1.answer is None                   # traced: never the direct answer
    resp = _answer(step1, "w0", "/s", [128, 192])
    resp.trace = _worker_stamps(step1, 20)
    (reply,) = replies(_done(core, d, resp))
    final = reply.response
    assert final.error is None and final.trace == [5]     # the ensemble's QUEUE_START
    assert [(c.ref, c.parent, c.model, c.version, c.request_id) for c in final.children] == [
        (1, 0, "add_sub", 1, "r-7"), (2, 0, "add_sub", 1, "r-7")]
    assert [n for n, _ in final.children[0].stamps] == [
        "REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END",
        "COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END"]
    assert final.children[1].stamps[2] == ("COMPUTE_START", 20)
    assert not core.ensembles.direct              # the direct path was not taken


def test_a_nested_ensemble_brings_its_steps_as_grandchildren():
    wrapped = _ensemble("wrapped", [_step("chain", IN, {"OUT0": "OUT0", "OUT1": "OUT1"})])
    core = _core()
    core.set_models(table(("add_sub", 1, ADD_SUB, ["w0"]), ("chain", 1, CHAIN, []),
                          ("wrapped", 1, wrapped, [])))
    out = _run(core, core.add(_traced(model="wrapped"), 1))
    for _ in range(2):
        (d,) = dispatches(out)
        step = d.execute.requests[0]
        resp = _answer(step, "w0", "/s", [0, 64])
        resp.trace = _worker_stamps(step, 3)
        out = _done(core, d, resp)
    (reply,) = replies(out)
    kids = reply.response.children
    assert [(c.ref, c.parent, c.model) for c in kids] == [
        (1, 0, "chain"), (2, 1, "add_sub"), (3, 1, "add_sub")]
    assert [n for n, _ in kids[0].stamps] == ["REQUEST_START", "QUEUE_START", "REQUEST_END"]


def test_an_untraced_request_carries_nothing():
    core = _core()
    req = full_request(1, model="chain", inputs=("INPUT0", "INPUT1"))
    out = _run(core, core.add(_view(msgspec.msgpack.encode(req)), 0))
    (d,) = dispatches(out)
    assert d.execute.requests[0].trace == []
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    (d,) = dispatches(out)
    assert d.execute.requests[0].answer is not None     # the direct path, as before
