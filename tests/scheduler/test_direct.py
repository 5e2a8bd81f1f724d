"""The final step answers the requester directly (scheduler/direct.py): the worker's
receipt (a bare final Response to the scheduler) ends the run with its outcome."""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code

from tests.scheduler.helpers import dispatches, executed, full_request, replies, request, table
from tests.scheduler.test_ensembles import (ADD_SUB, CHAIN, IN, IO2, ME, _answer, _core, _done,
                                            _ensemble, _ensemble_request, _run, _step)
from tests.specs import spec


def _receipt(req, error=None):
    """What workers/answers.py sends the scheduler after answering the requester."""
    err = None if error is None else messages.ErrorInfo(int(error[0]), error[1])
    return messages.Response(req.rid, error=err, instance="w0", empty=True)


def _last_step(core, req=None):
    out = _run(core, core.add(req or _ensemble_request(), 0))
    d = dispatches(out)[0]
    assert d.execute.requests[0].answer is None            # not the last step
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    (d,) = dispatches(out)
    return d, d.execute.requests[0]


def _counts(core, model="chain"):
    st = core.stats_json(model)["model_stats"][0]
    return st["inference_stats"]["success"]["count"], st["inference_stats"]["fail"]["count"]


def test_the_final_step_is_marked_and_its_receipt_and_executed_end_the_run():
    core = _core()
    d, last = _last_step(core)
    assert last.frontend == ME                              # the core still tracks it
    assert last.answer == messages.EnsembleAnswer(
        "fe", 1, "chain", 1, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"}, False, [])
    assert [o.name for o in last.outputs] == ["OUTPUT0", "OUTPUT1"]
    # the worker answered "fe" itself: Executed, then its receipt, with no Reply
    out = _run(core, core.executed(executed(d, compute=(1, 2, 3)), 9))
    assert core.ensembles.clients and _counts(core) == (0, 0)   # the outcome is still to come
    out += _run(core, core.response(_receipt(last), 9))
    assert not replies(out)
    assert not core.ensembles.clients and not core.ensembles.steps
    assert sorted(core._instances["w0"].releases) == [("/s", 0), ("/s", 64)]
    stats = core.stats_json("chain")["model_stats"][0]
    assert stats["execution_count"] == 1
    assert stats["inference_stats"]["compute_infer"] == {"count": 1, "ns": 100 + 2}
    assert core.ensembles.direct == {("chain", 1): 1}
    (row,) = [m for m in core.metrics() if m.name == "chain"]
    assert row.direct == 1


def test_a_receipt_before_the_executed_counts_the_success_at_the_executed():
    core = _core()
    d, last = _last_step(core)
    assert not replies(_run(core, core.response(_receipt(last), 9)))
    assert not core.ensembles.clients and _counts(core) == (0, 0)
    _run(core, core.executed(executed(d, compute=(1, 2, 3)), 9))
    assert _counts(core) == (1, 0) and not core.ensembles.unexecuted


def test_a_worker_that_dies_after_its_answer_and_before_its_executed_leaves_no_run_behind():
    # The requester has the answer (the receipt came); no Executed will: the request
    # counts its success when the core fails the dead worker's batch, and nothing of it
    # stays (a statistics query would wait for it: Ensembles.uncounted)
    core = _core()
    d, last = _last_step(core)
    _run(core, core.response(_receipt(last), 9))
    assert core.ensembles.uncounted("chain")
    after = table(("add_sub", 1, ADD_SUB, []), ("chain", 1, CHAIN, []))
    after.models[0].exited = {"w0": "instance 'add_sub_0' (pid 7) killed by signal SIGKILL"}
    out = _run(core, core.set_models(after))
    assert not replies(out)
    assert not core.ensembles.unexecuted and not core.ensembles.uncounted("")
    assert _counts(core) == (1, 0)


def test_a_failed_direct_step_counts_a_failure_and_a_requested_subset_is_all_it_asks():
    core = _core()
    req = full_request(1, model="chain", inputs=("INPUT0", "INPUT1"))
    req.outputs = [messages.OutputSpec("OUT1")]
    d, last = _last_step(core, req)
    assert [o.name for o in last.outputs] == ["OUTPUT1"]
    assert last.answer.renames == {"OUTPUT1": "OUT1"}
    out = _run(core, core.executed(executed(d, failed=[last.rid]), 9))
    out += _run(core, core.response(_receipt(last, (Code.INVALID_ARG, "no")), 9))
    assert not replies(out) and not core.ensembles.clients
    stats = core.stats_json("chain")["model_stats"][0]
    assert stats["inference_stats"]["fail"]["count"] == 1
    assert stats["execution_count"] == 0


def test_a_response_senders_later_error_counts_a_failure_though_execute_succeeded():
    # a non-decoupled model answering through its sender after execute returned: its
    # Executed reports no failure, the receipt of its error answer does
    core = _core()
    d, last = _last_step(core)
    _run(core, core.executed(executed(d), 9))
    out = _run(core, core.response(_receipt(last, (Code.INTERNAL, "late")), 9))
    assert not replies(out) and not core.ensembles.clients and not core.ensembles.unexecuted
    assert _counts(core) == (0, 1)


def test_a_cancel_while_the_direct_step_runs_reaches_its_worker_whose_answer_stands():
    core = _core()
    d, last = _last_step(core)
    out = _run(core, core.cancel("fe", 1, 0))
    assert not replies(out)                 # the worker answers the requester
    (note,) = [o for o in out if type(o.message) is messages.CancelRunning]
    assert note.address == "w0" and note.message.requests == [(ME, last.rid)]
    assert not replies(_run(core, core.cancel("fe", 1, 0)))     # a second cancel: nothing
    # the model ignored it and succeeded: a success, as in Triton (no step was left)
    out = _run(core, core.executed(executed(d), 9) + core.response(_receipt(last), 9))
    assert not replies(out) and not core.ensembles.clients and not core.ensembles.steps
    assert _counts(core) == (1, 0)


def test_a_cancel_the_direct_step_honours_counts_a_failure():
    core = _core()
    d, last = _last_step(core)
    _run(core, core.cancel("fe", 1, 0))
    _run(core, core.executed(executed(d, failed=[last.rid]), 9))
    _run(core, core.response(_receipt(last, (Code.CANCELLED, "Request was cancelled")), 9))
    assert not core.ensembles.clients and _counts(core) == (0, 1)


def test_with_client_shared_memory_the_answer_names_the_workers_that_ran_steps():
    # the caller sends Forget to each (unregistered regions); without shm none is kept
    core = _core()
    req = full_request(1, model="chain", inputs=("INPUT0", "INPUT1"))
    req.outputs = [messages.OutputSpec("OUT0", messages.TensorRef("OUT0", "FP32", [4], "client", 0, 16, kind=messages.CLIENT_SHM))]
    d, last = _last_step(core, req)
    assert last.answer.shm and last.answer.mapped == ["w0"]
    assert last.answer.renames == {"OUTPUT0": "OUT0"}
    assert [(o.name, o.dest) for o in last.outputs] == [("OUTPUT0", req.outputs[0].dest)]


# ----------------------------------------------------------------- nested ensembles

# chain's OUT0/OUT1 become wrapped's W0/W1: the final step's answer renames twice
WRAPPED = spec('name: "wrapped" platform: "ensemble"' + IO2 % ("W0", "W1")
               + "ensemble_scheduling { step [ "
               + _step("chain", IN, {"OUT0": "W0", "OUT1": "W1"}) + " ] }")
GHOST_LAST = _ensemble("ghostly", [
    _step("add_sub", IN, {"OUTPUT0": "SUM", "OUTPUT1": "DIFF"}),
    _step("ghost", {"INPUT0": "SUM", "INPUT1": "DIFF"}, {"OUTPUT0": "OUT0", "OUTPUT1": "OUT1"})])
WRAPPED_GHOST = _ensemble("wrapped_ghost", [_step("ghostly", IN, {"OUT0": "OUT0", "OUT1": "OUT1"})])


def _nested_core():
    core = _core()
    core.set_models(table(("add_sub", 1, ADD_SUB, ["w0"]), ("chain", 1, CHAIN, []),
                          ("wrapped", 1, WRAPPED, []), ("ghostly", 1, GHOST_LAST, []),
                          ("wrapped_ghost", 1, WRAPPED_GHOST, [])))
    return core


def _nested_last_step(core):
    out = _run(core, core.add(request(1, model="wrapped", inputs=("INPUT0", "INPUT1")), 0))
    (d,) = dispatches(out)                 # chain's first step, inside wrapped
    assert d.execute.requests[0].answer is None
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    (d,) = dispatches(out)
    return d, d.execute.requests[0]


def test_a_nested_ensembles_final_step_answers_the_outer_caller_with_both_levels_composed():
    core = _nested_core()
    d, last = _nested_last_step(core)
    # chain's last step answers "fe" as wrapped: chain's outputs renamed twice
    assert last.answer == messages.EnsembleAnswer(
        "fe", 1, "wrapped", 1, {"OUTPUT0": "W0", "OUTPUT1": "W1"}, False, [], ["chain"])
    out = _run(core, core.executed(executed(d), 9) + core.response(_receipt(last), 9))
    assert not replies(out)                # nothing forwarded: the worker answered "fe"
    assert not core.ensembles.clients and not core.ensembles.steps
    assert not core.ensembles.unexecuted
    assert _counts(core, "wrapped") == (1, 0) and _counts(core, "chain") == (1, 0)
    assert core.ensembles.direct == {("wrapped", 1): 1}     # counted for the client's model
    assert sorted(core._instances["w0"].releases) == [("/s", 0), ("/s", 64)]


def test_a_nested_receipt_before_the_executed_and_a_failed_one():
    core = _nested_core()
    d, last = _nested_last_step(core)
    _run(core, core.response(_receipt(last), 9))
    assert not core.ensembles.clients and _counts(core, "wrapped") == (1, 0)
    assert _counts(core, "chain") == (0, 0)           # the step's Executed is still to come
    _run(core, core.executed(executed(d), 9))
    assert _counts(core, "chain") == (1, 0) and not core.ensembles.unexecuted
    d, last = _nested_last_step(core)
    out = _run(core, core.executed(executed(d, failed=[last.rid]), 9))
    out += _run(core, core.response(_receipt(last, (Code.INVALID_ARG, "no")), 9))
    assert not replies(out) and not core.ensembles.clients and not core.ensembles.steps
    assert _counts(core, "wrapped") == (1, 1) and _counts(core, "chain") == (1, 1)


def test_a_nested_run_that_cannot_answer_directly_answers_through_the_outer_run():
    core = _nested_core()
    out = _run(core, core.add(request(1, model="wrapped_ghost", inputs=("INPUT0", "INPUT1")), 0))
    (d,) = dispatches(out)
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    (reply,) = replies(out)                # "ghost" has no version: the forwarded error
    assert reply.frontend == "fe" and reply.response.rid == 1
    assert reply.response.error.message == (
        "in ensemble 'wrapped_ghost', in ensemble 'ghostly', Request for unknown model: "
        "'ghost' has no available versions")
    assert not core.ensembles.clients and not core.ensembles.steps
    assert not core.ensembles.direct and _counts(core, "wrapped_ghost") == (0, 1)


def test_a_cancel_of_the_outer_request_reaches_the_nested_final_steps_worker():
    core = _nested_core()
    d, last = _nested_last_step(core)
    out = _run(core, core.cancel("fe", 1, 0))
    assert not replies(out)                 # the worker answers the caller
    (note,) = [o for o in out if type(o.message) is messages.CancelRunning]
    assert note.address == "w0" and note.message.requests == [(ME, last.rid)]
    _run(core, core.executed(executed(d, failed=[last.rid]), 9))
    _run(core, core.response(_receipt(last, (Code.CANCELLED, "Request was cancelled")), 9))
    assert not core.ensembles.clients and not core.ensembles.steps
    assert _counts(core, "wrapped") == (0, 1) and _counts(core, "chain") == (0, 1)


def test_three_levels_compose_into_one_answer_and_one_receipt_ends_all_three():
    outer = spec('name: "outer" platform: "ensemble"' + IO2 % ("X0", "X1")
                 + "ensemble_scheduling { step [ "
                 + _step("wrapped", IN, {"W0": "X0", "W1": "X1"}) + " ] }")
    core = _nested_core()
    core.set_models(table(("add_sub", 1, ADD_SUB, ["w0"]), ("chain", 1, CHAIN, []),
                          ("wrapped", 1, WRAPPED, []), ("outer", 1, outer, [])))
    out = _run(core, core.add(request(1, model="outer", inputs=("INPUT0", "INPUT1")), 0))
    (d,) = dispatches(out)
    out = _done(core, d, _answer(d.execute.requests[0], "w0", "/s", [0, 64]))
    (d,) = dispatches(out)
    last = d.execute.requests[0]
    assert last.answer == messages.EnsembleAnswer(
        "fe", 1, "outer", 1, {"OUTPUT0": "X0", "OUTPUT1": "X1"}, False, [], ["wrapped", "chain"])
    out = _run(core, core.executed(executed(d), 9) + core.response(_receipt(last), 9))
    assert not replies(out) and not core.ensembles.clients and not core.ensembles.steps
    assert [_counts(core, m) for m in ("outer", "wrapped", "chain")] == [(1, 0)] * 3
    assert core.ensembles.direct == {("outer", 1): 1}
