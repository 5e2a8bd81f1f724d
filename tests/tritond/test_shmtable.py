"""The shared client shm registry (tritond/shmtable.py): names, generations, tables."""
from tritond import messages
from tritond.errors import Code
from tritond.shmtable import ShmRegistry


def region(name, kind="system", key="/k"):
    return messages.ShmRegion(name, kind, key, 0, 64, -1, 0)


def test_names_are_unique_and_generations_never_reused():
    reg = ShmRegistry()
    assert reg.register(region("a")) is None
    err = reg.register(region("a", key="/other"))
    assert err.code == Code.ALREADY_EXISTS and "'a' already in manager" in err.message
    first = reg.regions["a"].gen
    reg.unregister("system", "a")
    reg.register(region("a"))
    assert reg.regions["a"].gen > first           # workers' mappings key on (key, gen)


def test_unregister_by_kind_and_unknown_names_are_no_error():
    reg = ShmRegistry()
    reg.register(region("s1"))
    reg.register(region("s2"))
    reg.register(region("c1", kind="cuda", key="aGFuZGxl"))
    reg.unregister("system", "nope")
    reg.unregister("cuda", "s1")                  # a name of the other kind: untouched
    assert sorted(reg.regions) == ["c1", "s1", "s2"]
    reg.unregister("system")
    assert sorted(reg.regions) == ["c1"]


def test_each_table_lists_everything_with_a_new_sequence():
    reg = ShmRegistry()
    reg.register(region("a"))
    t1 = reg.table()
    reg.register(region("b"))
    t2 = reg.table()
    assert t2.seq == t1.seq + 1 and [r.name for r in t2.regions] == ["a", "b"]
    assert messages.decoder(messages.TO_FRONTEND).decode(messages.encode([t2])) == [t2]


def test_unregistered_regions_await_every_frontend_before_they_leave_the_table():
    reg = ShmRegistry()
    reg.register(region("a"))
    gen = reg.regions["a"].gen
    reg.unregister("system", "a")
    assert "a" not in reg.regions                 # the name is free at once ...
    listed = reg.table().regions                  # ... but every frontend still lists it
    assert [(r.name, r.gen, r.awaiting) for r in listed] == [("a", gen, True)]
    reg.register(region("a"))                     # a new one shadows it
    assert len(reg.table().regions) == 2
    assert reg.idle(gen, "fe-0", ["fe-0", "fe-1"]) is False
    assert reg.idle(gen + 99, "fe-1", ["fe-0", "fe-1"]) is False     # unknown gen
    assert reg.idle(gen, "fe-1", ["fe-0", "fe-1"]) is True
    assert [(r.gen, r.awaiting) for r in reg.table().regions] == [(gen + 1, False)]
