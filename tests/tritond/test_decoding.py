"""InboxDecoder: whole frames fast, message by message when one is bad."""
from __future__ import annotations

import msgspec
import pytest

from tritond import messages
from tritond.decoding import Bad, InboxDecoder

GARBAGE = msgspec.Raw(msgspec.msgpack.encode([999, "junk"]))


def test_a_good_frame_decodes_whole():
    dec = InboxDecoder(messages.TO_SCHEDULER, "scheduler")
    frame = messages.encode([messages.Cancel("fe", 1), messages.Shutdown("x")])
    assert dec.decode(frame) == [messages.Cancel("fe", 1), messages.Shutdown("x")]


def test_one_bad_message_keeps_its_neighbours_and_names_the_sender():
    dec = InboxDecoder(messages.TO_SCHEDULER, "scheduler")
    frame = messages.encode([messages.Cancel("fe", 1), GARBAGE,
                             messages.Hello("worker", "w1", 5, "@w1"), messages.Shutdown()])
    with pytest.raises(msgspec.MsgspecError):
        dec.decode(frame)
    good, bad = dec.split(frame)
    assert good == [messages.Cancel("fe", 1), messages.Shutdown()]
    assert bad[0].detail.startswith("undecodable message") and bad[0].sender == "fe"
    assert bad[1] == Bad("unexpected Hello message for the scheduler process", "@w1")


def test_a_sender_learnt_before_is_used_and_a_broken_frame_is_one_bad():
    dec = InboxDecoder(messages.TO_WORKER, "w1")
    good, bad = dec.split(messages.encode([GARBAGE]), peer="@sched")
    assert good == [] and bad[0].sender == "@sched"
    good, bad = dec.split(b"\xc1", peer="")
    assert good == [] and bad == [Bad(bad[0].detail, "")]
    assert bad[0].detail.startswith("undecodable frame")


def test_every_message_is_in_any_and_every_sender_field_exists():
    union = set(messages.ANY.__args__)
    for inbox in (messages.TO_FRONTEND, messages.TO_SCHEDULER, messages.TO_WORKER,
                  messages.TO_PARENT):
        assert set(inbox.__args__) <= union
    for kind, field in messages.SENDER.items():
        assert field in kind.__struct_fields__
