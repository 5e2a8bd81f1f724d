"""The scheduler's view of Request: same wire format, unread fields forwarded undecoded."""
from typing import get_args

import msgspec
import pytest

from tritond import messages
from tritond.scheduler import wire

from .helpers import config, core_with, dispatches, full_request, request

REF = messages.TensorRef("INPUT0", "FP32", [2, 3], "/tritond-x-1-fe0", 64, 24)
DEST = messages.TensorRef("OUTPUT0", "FP32", [2, 3], "key", 0, 24, messages.CLIENT_SHM, gen=4)

FULL = messages.Request(
    rid=7, frontend="fe", model="m", version=3, inputs=[REF, REF],
    outputs=[messages.OutputSpec("OUTPUT0", DEST), messages.OutputSpec("OUTPUT1")],
    batch=2, request_id="my-id", priority=2, timeout_us=500, correlation_id="seq-9",
    flags=3, parameters={"p": 1, "s": "x", "b": True}, arrival_ns=123)

VARIANTS = [
    FULL,
    messages.Request(rid=1, frontend="fe", model="m", version=1, inputs=[]),       # all defaults
    messages.Request(rid=1, frontend="fe", model="m", version=1, inputs=[REF], batch=4),
    messages.Request(rid=1, frontend="fe", model="m", version=1, inputs=[REF],
                     parameters={"k": [1, 2]}),                # default fields before a set one
    messages.Request(rid=2, frontend="fe", model="m", version=1, inputs=[REF],
                     correlation_id=2**64 - 1, arrival_ns=1),
]
_views = msgspec.msgpack.Decoder(list[wire.TO_SCHEDULER])
_worker = messages.decoder(messages.TO_WORKER)


@pytest.mark.parametrize("req", VARIANTS)
def test_request_reaches_the_worker_unchanged(req):
    (view,) = _views.decode(messages.encode([req]))
    assert type(view) is wire.RequestView
    assert (view.rid, view.frontend, view.model, view.version, view.batch, view.priority,
            view.timeout_us, view.correlation_id, view.flags, view.arrival_ns) == (
        req.rid, req.frontend, req.model, req.version, req.batch, req.priority,
        req.timeout_us, req.correlation_id, req.flags, req.arrival_ns)
    assert type(view.inputs) is msgspec.Raw and type(view.parameters) is msgspec.Raw
    frame = messages.encode([wire.ExecuteView(5, [view, view], [("seg", 8)])])
    # byte for byte what the frontend's Request would have made
    assert frame == messages.encode([messages.Execute(5, [req, req], [("seg", 8)])])
    (execute,) = _worker.decode(frame)
    assert execute == messages.Execute(5, [req, req], [("seg", 8)])


def test_view_mirrors_request_field_by_field():
    # Fails when a field is added to (or moved in) messages.Request without the view.
    req_info = msgspec.inspect.type_info(messages.Request)
    view_info = msgspec.inspect.type_info(wire.RequestView)
    assert [f.name for f in view_info.fields] == [f.name for f in req_info.fields]
    assert (view_info.tag, view_info.array_like) == (req_info.tag, req_info.array_like)
    assert (wire.RequestView.__struct_config__.omit_defaults
            == messages.Request.__struct_config__.omit_defaults)
    for view_field, req_field in zip(view_info.fields, req_info.fields):
        assert view_field.required == req_field.required, view_field.name
        if not view_field.required:
            default = (view_field.default if view_field.default is not msgspec.NODEFAULT
                       else view_field.default_factory())
            if type(default) is msgspec.Raw:      # the msgpack bytes of the same default
                default = msgspec.msgpack.decode(default)
            want = (req_field.default if req_field.default is not msgspec.NODEFAULT
                    else req_field.default_factory())
            assert default == want, view_field.name
        if type(view_field.type) is not msgspec.inspect.RawType:
            assert view_field.type == req_field.type, view_field.name
    execute = msgspec.inspect.type_info(messages.Execute)
    view_execute = msgspec.inspect.type_info(wire.ExecuteView)
    assert [f.name for f in view_execute.fields] == [f.name for f in execute.fields]
    assert view_execute.tag == execute.tag


def test_inbox_set_is_the_schedulers_with_the_view():
    ours = get_args(wire.TO_SCHEDULER)
    theirs = get_args(messages.TO_SCHEDULER)
    assert ours == tuple(wire.RequestView if t is messages.Request else t for t in theirs)
    assert messages.Request not in ours


def test_batching_reads_input_shapes_from_the_raw_inputs():
    core = core_with(config(8, {}))
    core.add(request(0, batch=1, inputs=("A", "B")), 0)
    core.add(request(1, batch=1, inputs=("A", "B")), 0)
    core.add(request(2, batch=1, inputs=("A", "C")), 0)   # another input: not batched with them
    (d,) = dispatches(core.step(0))
    assert [r.rid for r in d.execute.requests] == [0, 1]


def test_a_policy_may_queue_a_decoded_request():
    # A request the scheduler builds itself (e.g. an ensemble step) carries decoded
    # TensorRefs: it batches with received ones and encodes the same way.
    core = core_with(config(8, {}))
    core.add(request(0, batch=1), 0)
    core.add(full_request(1, batch=1), 0)
    (d,) = dispatches(core.step(0))
    (execute,) = _worker.decode(messages.encode([d.execute]))
    assert execute.requests == [full_request(0, batch=1), full_request(1, batch=1)]
