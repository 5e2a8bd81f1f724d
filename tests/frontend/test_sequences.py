"""LiveSequences (frontend/sequences.py): what a draining frontend tells the others."""
from types import SimpleNamespace

from tritond import messages
from tritond.frontend.sequences import LiveSequences
from tritond.messages import SEQUENCE_END, SEQUENCE_START


def seq_model(name="m", idle_us=1_000_000):
    spec = SimpleNamespace(sequence_batching=SimpleNamespace(max_sequence_idle_us=idle_us),
                           steps=[])
    return SimpleNamespace(name=name, spec=spec)


def request(corrid, start=False):
    params = {"sequence_id": corrid, **({"sequence_start": True} if start else {})}
    return SimpleNamespace(model="m", parameters=params)


def test_nothing_is_shared_until_draining_then_a_snapshot_and_each_change():
    told: list = []
    a, b = LiveSequences(), LiveSequences()
    mv = seq_model()
    a.note(mv, 1, SEQUENCE_START)
    a.note(mv, 2, SEQUENCE_START)
    assert told == [] and a.share is None
    a.start_sharing(told.extend)
    assert sorted(n.corrid for n in told) == [1, 2]
    b.merge(told)
    assert b.continues(request(1)) and b.continues(request(2)) and not b.continues(request(3))
    assert not b.continues(request(1, start=True))     # a START is never a continuation
    told.clear()
    a.note(mv, 1, 0)
    a.note(mv, 2, SEQUENCE_END)
    assert [(n.corrid, n.ended) for n in told] == [(1, False), (2, True)]
    # the notes travel as messages between frontends
    wire = messages.SequenceNotes("fe-0", told)
    got = messages.decoder(messages.TO_FRONTEND).decode(messages.encode([wire]))
    b.merge(got[0].notes)
    assert b.count() == 1 and not b.continues(request(2))


def test_an_older_note_does_not_roll_back_a_newer_request():
    live = LiveSequences()
    live.note(seq_model(), 9, SEQUENCE_START)
    t, idle = live.live[("m", 9)]
    live.merge([messages.SequenceNote("m", 9, t - 5, idle)])
    assert live.live[("m", 9)] == (t, idle)
