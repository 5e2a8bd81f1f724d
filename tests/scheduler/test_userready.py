"""Combining the instances' is_ready() answers (python_backend / Triton's ModelIsReady:
every instance must say True within the bound)."""
from __future__ import annotations

from tritond import messages
from tritond.framing import READY_SUFFIX

from scheduler.userready import WAIT_NS, UserReadiness


def _query(qid: int = 7) -> messages.UserReadyQuery:
    return messages.UserReadyQuery(qid, "fe", "m", 1)


def _asked(ready: UserReadiness, instances=("w0", "w1"), now: int = 0) -> int:
    posts = ready.ask(_query(), list(instances), now)
    assert [a for a, _ in posts] == [i + READY_SUFFIX for i in instances]
    checks = {m.qid for _, m in posts}
    assert len(checks) == 1 and all(m.scheduler == "sched" for _, m in posts)
    return checks.pop()


def _answers(posts) -> list:
    return [(address, msg.qid, msg.ready) for address, msg in posts]


def test_ready_only_when_every_instance_says_true():
    ready = UserReadiness("sched")
    qid = _asked(ready)
    assert ready.reply(messages.UserReadyReply("w0", qid, True)) == []
    assert _answers(ready.reply(messages.UserReadyReply("w1", qid, True))) == [("fe", 7, True)]
    assert not ready and ready.next_deadline_ns() is None


def test_the_first_no_answers_at_once_and_a_late_reply_is_dropped():
    for no in (messages.UserReadyReply("w1", 0, False),
               messages.UserReadyReply("w1", 0, True, messages.ErrorInfo(13, "raised"))):
        ready = UserReadiness("sched")
        no.qid = qid = _asked(ready)
        assert _answers(ready.reply(no)) == [("fe", 7, False)]
        assert ready.reply(messages.UserReadyReply("w0", qid, True)) == []


def test_an_instance_silent_past_the_bound_is_not_ready():
    ready = UserReadiness("sched")
    qid = _asked(ready, now=100)
    ready.reply(messages.UserReadyReply("w0", qid, True))
    assert ready.next_deadline_ns() == 100 + WAIT_NS
    assert ready.due(99 + WAIT_NS) == []
    assert _answers(ready.due(100 + WAIT_NS)) == [("fe", 7, False)]
    assert ready.reply(messages.UserReadyReply("w1", qid, True)) == []


def test_no_live_instance_is_not_ready():
    assert _answers(UserReadiness("sched").ask(_query(), [], 0)) == [("fe", 7, False)]
