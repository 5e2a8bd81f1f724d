"""workers/answers.py: a marked step request's Response goes to the ensemble's caller as
the ensemble's, and a bare receipt with its outcome goes to the scheduler."""
from __future__ import annotations

from tritond import messages
from tritond.errors import Code
from tritond.workers.answers import EnsembleAnswers


def _answers():
    sent = []
    answers = EnsembleAnswers("@w1", lambda addr, msg: sent.append((addr, msg)))
    req = messages.Request(7, "@sched", "add_sub", 1, [], [], 0, "", 0, 0, 0, 0, {}, 0)
    req.answer = messages.EnsembleAnswer("@fe", 3, "chain", 1, {"OUTPUT0": "OUT0"}, False, [])
    assert answers.note([req])
    return answers, sent


def test_the_caller_gets_the_ensembles_answer_and_the_scheduler_a_receipt():
    answers, sent = _answers()
    ref = messages.TensorRef("OUTPUT0", "FP32", [4], "/w1", 0, 16)
    answers.post("@sched", messages.Response(7, outputs=[ref], instance="@w1"))
    (to_caller, answer), (to_sched, receipt) = sent
    assert (to_caller, answer.rid, [o.name for o in answer.outputs]) == ("@fe", 3, ["OUT0"])
    assert to_sched == "@sched" and receipt == messages.Response(
        7, instance="@w1", empty=True)
    assert not answers.open


def test_an_error_reaches_the_caller_prefixed_and_the_scheduler_as_it_is():
    answers, sent = _answers()
    err = messages.ErrorInfo(int(Code.INTERNAL), "late refusal")
    answers.post("@sched", messages.Response(7, error=err, instance="@w1"))
    (_, answer), (_, receipt) = sent
    assert answer.error.message == "in ensemble 'chain', late refusal"
    assert receipt.error == err and receipt.empty and not receipt.outputs


def test_a_non_final_marker_goes_to_the_caller_alone_and_others_pass_through():
    answers, sent = _answers()
    answers.post("@sched", messages.Response(7, instance="@w1", final=False, empty=True))
    answers.post("@fe2", messages.Response(9))
    assert [(addr, m.rid) for addr, m in sent] == [("@fe", 3), ("@fe2", 9)]
    assert answers.open


def test_a_nested_ensembles_step_prefixes_an_error_once_per_level_outermost_first():
    answers, sent = _answers()
    answers.open[("@sched", 7)][0].within = ["inner", "innermost"]
    err = messages.ErrorInfo(int(Code.INVALID_ARG), "no")
    answers.post("@sched", messages.Response(7, error=err, instance="@w1"))
    (_, answer), (_, receipt) = sent
    assert answer.error.message == (
        "in ensemble 'chain', in ensemble 'inner', in ensemble 'innermost', no")
    assert answer.error.code == Code.INVALID_ARG and receipt.error == err


def test_an_answer_that_leaves_a_requested_output_out_goes_to_the_scheduler_as_it_is():
    # the scheduler passes the missing output on as absent, as Triton's ensemble does
    answers, sent = _answers()
    other = messages.TensorRef("OUTPUT1", "FP32", [4], "/w1", 64, 16)
    resp = messages.Response(7, outputs=[other], instance="@w1")
    answers.post("@sched", resp)
    assert sent == [("@sched", resp)] and resp.rid == 7 and resp.outputs[0].name == "OUTPUT1"
    assert not answers.open
