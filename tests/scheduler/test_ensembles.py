"""Ensembles in the pure scheduler core: steps, references, releases, errors, cancels."""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code
from tritond.scheduler.core import SchedulerCore

from tests.scheduler.helpers import dispatches, executed, full_request, replies, request, table
from tests.specs import spec

ME = "sched"
IO2 = '''
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },
        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "%s" data_type: TYPE_FP32 dims: [ 4 ] },
         { name: "%s" data_type: TYPE_FP32 dims: [ 4 ] } ]
'''
ADD_SUB = spec('name: "add_sub" backend: "python"' + IO2 % ("OUTPUT0", "OUTPUT1"))
IDENTITY = spec('name: "identity" backend: "python" '
                'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ] '
                'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]')


def _step(model, inputs, outputs):
    ins = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
    outs = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
    return f'{{ model_name: "{model}" model_version: -1 {ins} {outs} }}'


def _ensemble(name, steps):
    return spec(f'name: "{name}" platform: "ensemble"' + IO2 % ("OUT0", "OUT1")
                + "ensemble_scheduling { step [ " + ", ".join(steps) + " ] }")


IN = {"INPUT0": "INPUT0", "INPUT1": "INPUT1"}
CHAIN = _ensemble("chain", [
    _step("add_sub", IN, {"OUTPUT0": "SUM", "OUTPUT1": "DIFF"}),
    _step("add_sub", {"INPUT0": "SUM", "INPUT1": "DIFF"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])
FANOUT = _ensemble("fanout", [
    _step("add_sub", IN, {"OUTPUT0": "A", "OUTPUT1": "B"}),
    _step("identity", {"IN": "A"}, {"OUT": "OUT0"}),
    _step("identity", {"IN": "B"}, {"OUT": "OUT1"})])


def _core(workers=("w0",)):
    core = SchedulerCore(address=ME)
    core.set_models(table(("add_sub", 1, ADD_SUB, list(workers)),
                          ("identity", 1, IDENTITY, ["w9", "w8"]),
                          ("chain", 1, CHAIN, []), ("fanout", 1, FANOUT, [])))
    return core


def _run(core, out):
    return core.settle(out + core.step(0), 0)


def _done(core, d, resp):
    """The worker's frame after a step: its Response and Executed."""
    return _run(core, core.response(resp, 0) + core.executed(executed(d), 0))


def _answer(req, worker, region, offsets, error=None):
    """The worker's Response to a step request: one output slot per requested output."""
    if error is not None:
        return messages.Response(req.rid, error=messages.ErrorInfo(int(Code.INVALID_ARG), error),
                                 instance=worker)
    outs = [messages.TensorRef(o.name, "FP32", [4], region, off, 16)
            for o, off in zip(sorted(req.outputs, key=lambda o: o.name), offsets)]
    return messages.Response(req.rid, outputs=outs, instance=worker)


def _ensemble_request(rid=1, model="chain"):
    return request(rid, model=model, inputs=("INPUT0", "INPUT1"))


def test_chain_passes_tensors_by_reference_and_releases_them_after_their_last_consumer():
    core = _core()
    out = _run(core, core.add(_ensemble_request(), 0))
    (d,) = dispatches(out)
    step0 = d.execute.requests[0]
    assert (d.address, step0.model, step0.frontend) == ("w0", "add_sub", ME)
    assert [t.name for t in step0.inputs] == ["INPUT0", "INPUT1"]
    out = _done(core, d, _answer(step0, "w0", "/seg-w0", [0, 64]))
    assert not replies(out)
    (d,) = dispatches(out)
    step1 = d.execute.requests[0]
    refs = {t.name: (t.region, t.offset) for t in step1.inputs}
    assert refs == {"INPUT0": ("/seg-w0", 0), "INPUT1": ("/seg-w0", 64)}   # no copy
    out = _done(core, d, _answer(step1, "w0", "/seg-w0", [128, 192]))
    (reply,) = replies(out)
    assert reply.frontend == "fe" and reply.response.rid == 1 and reply.response.error is None
    assert [(t.name, t.offset) for t in reply.response.outputs] == [("OUT0", 128), ("OUT1", 192)]
    assert reply.response.instance == "w0" and reply.response.owners == []
    # the intermediates go back to w0 with its next Execute
    assert sorted(core._instances["w0"].releases) == [("/seg-w0", 0), ("/seg-w0", 64)]
    assert not core.ensembles.clients and not core.ensembles.steps


def test_fan_out_runs_independent_steps_together_and_names_each_owner():
    core = _core()
    out = _run(core, core.add(_ensemble_request(model="fanout"), 0))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/a", [0, 64]))
    ds = dispatches(out)
    assert sorted(d.address for d in ds) == ["w8", "w9"]       # both identity steps at once
    answers = {}
    for d in ds:
        req = d.execute.requests[0]
        answers[req.inputs[0].offset] = (req, d.address, d)
    r1, w1, d1 = answers[0]
    out = _done(core, d1, _answer(r1, w1, f"/{w1}", [8]))
    assert not replies(out)
    r2, w2, d2 = answers[64]
    out = _done(core, d2, _answer(r2, w2, f"/{w2}", [16]))
    (reply,) = replies(out)
    resp = reply.response
    assert [(t.name, t.region) for t in resp.outputs] == [("OUT0", f"/{w1}"), ("OUT1", f"/{w2}")]
    assert resp.owners == [w1, w2]


def test_a_step_error_fails_the_request_with_the_step_message_and_releases_what_it_held():
    core = _core()
    out = _run(core, core.add(_ensemble_request(), 0))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "", [], error="add_sub refuses -1"))
    (reply,) = replies(out)
    assert reply.response.error.message == "in ensemble 'chain', add_sub refuses -1"   # Triton names it
    assert reply.response.error.code == Code.INVALID_ARG
    assert sorted(core._instances["w0"].releases) == [("/s", 0), ("/s", 64)]
    assert core.stats_json("chain")["model_stats"][0]["inference_stats"]["fail"]["count"] == 1


def test_unknown_composing_model_fails_the_request():
    core = SchedulerCore(address=ME)
    core.set_models(table(("chain", 1, CHAIN, [])))
    (reply,) = replies(_run(core, core.add(_ensemble_request(), 0)))
    assert reply.response.error.code == Code.UNAVAILABLE
    assert "add_sub" in reply.response.error.message


def test_cancel_waits_for_running_steps_then_answers_cancelled():
    core = _core()
    out = _run(core, core.add(_ensemble_request(), 0))
    d = dispatches(out)[0]
    out = _run(core, core.cancel("fe", 1, 0))
    assert [type(o.message) for o in out] == [messages.CancelRunning]   # step 0 is running
    assert not replies(out)
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    (reply,) = replies(out)
    assert reply.response.error.code == Code.CANCELLED
    assert not dispatches(out)                                       # step 1 never starts
    assert sorted(core._instances["w0"].releases) == [("/s", 0), ("/s", 64)]


def test_a_cancel_once_every_step_was_submitted_answers_what_the_steps_answer():
    # Triton checks a cancel between steps: with none left to start, the running
    # ones' answers stand (each is told; these ignore it and succeed)
    core = _core()
    out = _run(core, core.add(_ensemble_request(model="fanout"), 0))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/a", [0, 64]))
    steps = dispatches(out)
    assert len(steps) == 2 and all(r.answer is None for x in steps for r in x.execute.requests)
    out = _run(core, core.cancel("fe", 1, 0))
    assert not replies(out)
    assert sorted(o.address for o in out if type(o.message) is messages.CancelRunning) == \
        ["w8", "w9"]
    out = _done(core, steps[0], _answer(steps[0].execute.requests[0], steps[0].address, "/b", [0]))
    out += _done(core, steps[1], _answer(steps[1].execute.requests[0], steps[1].address, "/c", [0]))
    (reply,) = replies(out)
    assert reply.response.error is None and len(reply.response.outputs) == 2
    st = core.stats_json("fanout")["model_stats"][0]["inference_stats"]
    assert (st["success"]["count"], st["fail"]["count"]) == (1, 0)


def test_a_cancel_with_a_step_still_to_come_fails_when_a_running_step_succeeds_anyway():
    core = _core()
    out = _run(core, core.add(_ensemble_request(model="fanout"), 0))
    d = dispatches(out)[0]
    _run(core, core.cancel("fe", 1, 0))
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/a", [0, 64]))
    (reply,) = replies(out)
    assert reply.response.error == messages.ErrorInfo(int(Code.CANCELLED),
                                                      "Request was cancelled")
    assert not dispatches(out)
    st = core.stats_json("fanout")["model_stats"][0]["inference_stats"]
    assert (st["success"]["count"], st["fail"]["count"]) == (0, 1)


def test_a_crashed_composing_worker_fails_only_the_requests_in_that_step():
    core = _core(workers=("w0", "w1"))
    out = _run(core, core.add(_ensemble_request(1), 0) + core.add(_ensemble_request(2), 0))
    by_worker = {d.address: d for d in dispatches(out)}
    assert set(by_worker) == {"w0", "w1"}
    table_after = table(("add_sub", 1, ADD_SUB, ["w1"]), ("identity", 1, IDENTITY, ["w9"]),
                        ("chain", 1, CHAIN, []), ("fanout", 1, FANOUT, []))
    table_after.models[0].exited = {"w0": "instance 'add_sub_0' (pid 7) killed by signal SIGKILL"}
    out = _run(core, core.set_models(table_after))
    (reply,) = replies(out)
    assert "SIGKILL" in reply.response.error.message and reply.response.error.code == Code.UNAVAILABLE
    survivor = by_worker["w1"]
    out = _done(core, survivor, _answer(survivor.execute.requests[0], "w1", "/t", [0, 64]))
    assert dispatches(out) and not replies(out)      # the other request goes on


def test_composing_models_batch_across_ensemble_requests_and_sequence_fields_pass():
    batching = spec('name: "add_sub" backend: "python" max_batch_size: 8 '
                    'dynamic_batching { }' + IO2 % ("OUTPUT0", "OUTPUT1"))
    chain = spec('name: "chain" platform: "ensemble" max_batch_size: 8' + IO2 % ("OUT0", "OUT1")
                 + "ensemble_scheduling { step [ " + _step(
                     "add_sub", IN, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"}) + " ] }")
    core = SchedulerCore(address=ME)
    core.set_models(table(("add_sub", 1, batching, ["w0"]), ("chain", 1, chain, [])))
    out = []
    for rid in (1, 2, 3):
        out += core.add(request(rid, model="chain", batch=1, inputs=("INPUT0", "INPUT1"),
                                correlation_id="seq-7", flags=messages.SEQUENCE_START), 0)
    (d,) = dispatches(_run(core, out))
    assert len(d.execute.requests) == 3                  # one batch of three ensemble steps
    sub = d.execute.requests[0]
    assert (sub.batch, sub.correlation_id, sub.flags) == (1, "seq-7", messages.SEQUENCE_START)


def test_an_ensemble_step_may_be_an_ensemble():
    outer = _ensemble("outer", [_step("chain", IN, {"OUT0": "OUT0", "OUT1": "OUT1"})])
    core = SchedulerCore(address=ME)
    core.set_models(table(("add_sub", 1, ADD_SUB, ["w0"]), ("chain", 1, CHAIN, []),
                          ("outer", 1, outer, [])))
    out = _run(core, core.add(_ensemble_request(model="outer"), 0))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [128, 192]))
    (reply,) = replies(out)
    assert reply.frontend == "fe" and reply.response.error is None
    assert [(t.name, t.offset) for t in reply.response.outputs] == [("OUT0", 128), ("OUT1", 192)]
    assert not core.ensembles.clients and not core.ensembles.steps


# ------------------------------------------- decoupled steps, backpressure, statistics

REPEAT = spec('name: "repeat" backend: "python" model_transaction_policy { decoupled: true } '
              'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ] '
              'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]')
ONE_IO = ('input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ] '
          'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]')


def _pair(name, first, second, extra="", decoupled=False):
    policy = " model_transaction_policy { decoupled: true }" if decoupled else ""
    return spec(f'name: "{name}" platform: "ensemble" {ONE_IO}{policy} ensemble_scheduling {{ '
                f'{extra} step [ ' + _step(first, {"IN": "IN"}, {"OUT": "MID"}) + ", "
                + _step(second, {"IN": "MID"}, {"OUT": "OUT"}) + " ] }")


def _one(req, worker, offset, final=True):
    ref = messages.TensorRef("OUT", "FP32", [4], f"/{worker}", offset, 16)
    return messages.Response(req.rid, outputs=[ref], instance=worker, final=final)


def _pair_core(**kw):
    core = SchedulerCore(address=ME)
    core.set_models(table(("repeat", 1, REPEAT, ["wr"]), ("identity", 1, IDENTITY, ["wi", "wj"]),
                          ("pair", 1, _pair("pair", "repeat", "identity", **kw), [])))
    return core


def test_each_response_of_a_decoupled_step_runs_the_next_step_and_answers_once():
    core = _pair_core(decoupled=True)
    (d,) = dispatches(_run(core, core.add(request(1, model="pair", inputs=("IN",)), 0)))
    step0 = d.execute.requests[0]
    later = []
    for offset in (0, 64):                         # two partial answers of repeat
        out = _run(core, core.response(_one(step0, "wr", offset, final=False), 0))
        (nxt,) = dispatches(out)
        assert nxt.execute.requests[0].inputs[0].offset == offset   # by reference
        later.append(nxt)
    out = _run(core, core.executed(executed(d), 0) + core.response(
        messages.Response(step0.rid, instance="wr", empty=True), 0))
    assert not replies(out)                        # identity still runs twice
    out = _done(core, later[0], _one(later[0].execute.requests[0], later[0].address, 128))
    (reply,) = replies(out)
    assert not reply.response.final and reply.response.outputs[0].offset == 128
    assert core._instances["wr"].releases == [("/wr", 0)]    # MID of iteration 1: consumed
    out = _done(core, later[1], _one(later[1].execute.requests[0], later[1].address, 192))
    (reply,) = replies(out)                        # the last step in flight: final rides on it
    assert reply.response.final and reply.response.outputs[0].offset == 192
    assert not core.ensembles.clients and not core.ensembles.steps


def test_a_step_whose_worker_dies_while_it_answers_after_execute_returned_fails_the_request():
    # the batch is over (Executed), the decoupled model still sends from its thread: the
    # core no longer tracks it, so the worker's death must still end the request
    core = _pair_core(decoupled=True)
    (d,) = dispatches(_run(core, core.add(request(1, model="pair", inputs=("IN",)), 0)))
    step0 = d.execute.requests[0]
    _run(core, core.executed(executed(d), 0))
    after = table(("repeat", 1, REPEAT, ["wr2"]), ("identity", 1, IDENTITY, ["wi", "wj"]),
                  ("pair", 1, _pair("pair", "repeat", "identity", decoupled=True), []))
    after.models[0].exited = {"wr": "instance 'repeat_0' (pid 7) killed by signal SIGKILL"}
    (reply,) = replies(_run(core, core.set_models(after)))
    assert reply.frontend == "fe" and reply.response.rid == 1 and reply.response.final
    assert reply.response.error == messages.ErrorInfo(int(Code.UNAVAILABLE), (
        "in ensemble 'pair', instance 'repeat_0' (pid 7) killed by signal SIGKILL while "
        "sending the responses of the request"))
    assert not core.ensembles.clients and not core.ensembles.steps
    assert step0.rid not in core.ensembles.answering
    # a worker that lives on (a table change of another kind) ends nothing
    (d,) = dispatches(_run(core, core.add(request(2, model="pair", inputs=("IN",)), 0)))
    _run(core, core.executed(executed(d), 0))
    assert not replies(_run(core, core.set_models(after)))
    assert core.ensembles.clients


def test_a_decoupled_ensemble_with_no_step_answer_sends_the_bare_final_flag():
    core = _pair_core(decoupled=True)
    (d,) = dispatches(_run(core, core.add(request(1, model="pair", inputs=("IN",)), 0)))
    out = _done(core, d, messages.Response(d.execute.requests[0].rid, instance="wr", empty=True))
    (reply,) = replies(out)
    assert reply.response.final and reply.response.empty and reply.response.error is None


def test_max_inflight_requests_holds_steps_back_until_a_slot_frees():
    core = _pair_core(extra="max_inflight_requests: 1", decoupled=True)
    out = _run(core, core.add(request(1, model="pair", inputs=("IN",)), 0)
               + core.add(request(2, model="pair", inputs=("IN",)), 0))
    (d,) = dispatches(out)                         # request 2's first step waits
    first = d.execute.requests[0]
    out = _run(core, core.response(_one(first, "wr", 0, final=False), 0))
    (ident,) = dispatches(out)
    out = _run(core, core.response(_one(first, "wr", 64, final=False), 0))
    assert not dispatches(out)                     # identity's one slot is taken
    out = _done(core, ident, _one(ident.execute.requests[0], ident.address, 128))
    (ident2,) = dispatches(out)                    # the backlogged identity step goes
    assert ident2.execute.requests[0].inputs[0].offset == 64
    out = _run(core, core.executed(executed(d), 0) + core.response(
        messages.Response(first.rid, instance="wr", empty=True), 0))
    (d2,) = dispatches(out)                        # repeat's slot: request 2 starts
    assert d2.execute.requests[0].rid != first.rid


def test_cancelling_a_request_whose_steps_all_wait_answers_at_once():
    core = _pair_core(extra="max_inflight_requests: 1")
    _run(core, core.add(request(1, model="pair", inputs=("IN",)), 0)
         + core.add(request(2, model="pair", inputs=("IN",)), 0))
    (reply,) = replies(_run(core, core.cancel("fe", 2, 0)))
    assert reply.response.rid == 2 and reply.response.error.code == Code.CANCELLED
    assert list(core._models[("pair", 1)].policy.limiter.backlog[0]) == []


def test_ensemble_statistics_sum_the_steps_compute_times():
    core = _core()
    out = _run(core, core.add(_ensemble_request(), 0))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    d = dispatches(out)[0]
    # the last step's Executed comes in the frame after its Response
    out = _run(core, core.response(_answer(d.execute.requests[0], "w0", "/s", [128, 192]), 5))
    assert replies(out)
    stats = core.stats_json("chain")["model_stats"][0]
    assert stats["execution_count"] == 0           # waits for the last step's times
    _run(core, core.executed(executed(d, compute=(1, 2, 3)), 9))
    stats = core.stats_json("chain")["model_stats"][0]
    assert stats["execution_count"] == 1 and stats["inference_count"] == 1
    inf = stats["inference_stats"]
    assert inf["compute_input"] == {"count": 1, "ns": 10 + 1}
    assert inf["compute_infer"] == {"count": 1, "ns": 100 + 2}
    assert inf["compute_output"] == {"count": 1, "ns": 1000 + 3}
    assert not core.ensembles.unexecuted


def test_steps_still_in_flight_keep_the_forwarded_path():
    core = _core()
    out = _run(core, core.add(_ensemble_request(model="fanout"), 0))
    d = dispatches(out)[0]
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/a", [0, 64]))
    # two identity steps each make one output: neither makes all of them
    assert all(r.answer is None for x in dispatches(out) for r in x.execute.requests)


def test_a_cancelled_ensemble_whose_sequence_step_is_queued_answers_once_its_slot_reaches_it():
    """A sequence model's step keeps its place when its ensemble is cancelled (the
    batcher's way); the ensemble's CANCELLED answer comes when the step's slot reaches
    it, once, and the request queued behind it in the sequence is cancelled with it."""
    seq_model = spec('name: "add_sub" backend: "python" max_batch_size: 1 '
                     'sequence_batching { direct { } }' + IO2 % ("OUTPUT0", "OUTPUT1"))
    chain = spec('name: "one" platform: "ensemble" max_batch_size: 1' + IO2 % ("OUT0", "OUT1")
                 + "ensemble_scheduling { step [ " + _step(
                     "add_sub", IN, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"}) + " ] }")
    core = SchedulerCore(address=ME)
    core.set_models(table(("add_sub", 1, seq_model, ["w0"]), ("one", 1, chain, [])))

    def ens(rid, flags=0):
        return request(rid, model="one", batch=1, inputs=("INPUT0", "INPUT1"),
                       correlation_id=7, flags=flags)

    (d,) = dispatches(_run(core, core.add(ens(1, messages.SEQUENCE_START), 0)))
    out = _run(core, core.add(ens(2), 0) + core.add(ens(3), 0))
    assert not dispatches(out) and not replies(out)    # queued behind the running step
    out = _run(core, core.cancel("fe", 2, 0))
    assert not replies(out)                            # held in its place
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    got = sorted((r.frontend, r.response.rid, r.response.error and r.response.error.code)
                 for r in replies(out))
    assert got == [("fe", 1, None), ("fe", 2, Code.CANCELLED), ("fe", 3, Code.CANCELLED)]
    assert not dispatches(out)
    assert not core.ensembles.clients and not core.ensembles.steps
    assert _run(core, core.cancel("fe", 2, 1)) == []
