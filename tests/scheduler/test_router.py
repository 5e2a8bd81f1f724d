"""InstanceRouter on its own: instance choice, pipelining, sticky pins, instance removal."""
from tritond.scheduler.router import Batch, InstanceRouter

from .helpers import instance

MODEL = object()      # the router only hands it to its instances


def router(n: int, depth: int = 0) -> InstanceRouter:
    r = InstanceRouter(depth)
    r.set_instances([instance(f"w{i}", i) for i in range(n)], MODEL)
    return r


def run(r: InstanceRouter, inst) -> Batch:
    """Dispatch a batch to ``inst`` as the core does."""
    batch = Batch(inst, [], 1)
    r.assign(inst, batch)
    return batch


def addresses(instances) -> list[str]:
    return [i.address for i in instances]


def test_instances_carry_their_table_entry():
    r = router(2)
    w1 = r.instances["w1"]
    assert (w1.address, w1.name, w1.kind, w1.device_id, w1.model) == ("w1", "m_1", "CPU", 0, MODEL)


def test_longest_idle_instance_goes_first():
    r = router(3)
    first = r.idle()
    run(r, first)
    second = r.idle()
    run(r, second)
    assert addresses([first, second]) == ["w0", "w1"]
    r.finished(first)                      # w0 is idle again, behind w2
    assert addresses(r.free) == ["w2", "w0"]
    assert r.idle().address == "w2"


def test_no_idle_instance_and_no_pipelining():
    r = router(1)
    run(r, r.idle())
    assert r.idle() is None and r.behind() is None


def test_pipelining_fills_busy_instances_in_turn_up_to_depth():
    r = router(2, depth=2)
    w0, w1 = r.idle(), None
    run(r, w0)
    assert r.behind() is None              # w1 is idle: it goes first
    w1 = r.idle()
    run(r, w1)
    order = []
    while (inst := r.behind()) is not None:
        order.append(inst.address)
        run(r, inst)
    assert order == ["w0", "w1", "w0", "w1"]   # spread over the instances, 2 ahead each
    assert [len(i.ahead) for i in (w0, w1)] == [2, 2]


def test_finishing_starts_the_batch_ahead():
    r = router(1, depth=1)
    w0 = r.idle()
    a = run(r, w0)
    b = run(r, r.behind())
    assert r.behind() is None              # full
    assert r.finished(w0) is a
    assert w0.busy is b and r.behind() is w0   # room again behind b
    assert r.finished(w0) is b
    assert w0.busy is None and r.idle() is w0 and r.behind() is None


def test_turning_pipelining_off_and_on():
    r = router(1, depth=3)
    w0 = r.idle()
    run(r, w0)
    run(r, r.behind())
    r.set_depth(0)
    assert r.behind() is None
    r.finished(w0)                         # still runs what it was given
    assert w0.busy is not None and r.behind() is None
    r.set_depth(3)
    assert r.behind() is w0


def test_pin_routes_a_key_until_unpinned():
    r = router(2)
    w0, w1 = r.instances["w0"], r.instances["w1"]
    r.pin("seq-1", w1)
    r.pin(42, w1)
    assert r.pinned("seq-1") is w1 and r.pinned(42) is w1 and r.pinned(7) is None
    assert w1.pins == {"seq-1", 42}
    assert r.least_pinned() is w0
    assert r.unpin("seq-1") is w1
    assert r.pinned("seq-1") is None and w1.pins == {42}
    assert r.unpin("seq-1") is None        # twice: nothing left
    r.pin(42, w0)                          # pinning again moves the key
    assert r.pinned(42) is w0 and w1.pins == set() and w0.pins == {42}


def test_a_pinned_instance_is_assigned_out_of_turn():
    r = router(3, depth=1)
    w0, w2 = r.instances["w0"], r.instances["w2"]
    run(r, w2)                             # not the longest idle
    assert addresses(r.free) == ["w0", "w1"] and addresses(r.second) == ["w2"]
    run(r, w0)
    run(r, w2)                             # behind its running batch, out of turn: full now
    assert addresses(r.second) == ["w0"] and len(w2.ahead) == 1


def test_removed_instance_drops_its_pins_and_leaves_the_queues():
    r = router(3, depth=1)
    w0, w1, w2 = (r.instances[a] for a in ("w0", "w1", "w2"))
    run(r, w0)
    r.pin("a", w0)
    r.pin("b", w1)
    removed = r.set_instances([instance("w1", 1), instance("w2", 2), instance("w3", 3)], MODEL)
    assert removed == [w0] and w0.gone
    assert w0.pins == {"a"}                # kept: its policy fails those sequences
    assert r.pinned("a") is None and r.pinned("b") is w1
    assert addresses(r.free) == ["w1", "w2", "w3"] and r.second == type(r.second)()
    assert sorted(r.instances) == ["w1", "w2", "w3"]
    assert r.instances["w1"] is w1         # kept instances keep their state


def test_adopt_takes_over_instances_pins_and_idle_order():
    old = router(3, depth=3)
    w0, w1, w2 = (old.instances[a] for a in ("w0", "w1", "w2"))
    run(old, w0)
    old.finished(w0)                       # free order: w1, w2, w0
    run(old, w1)
    old.pin("s", w2)
    model = object()
    new = InstanceRouter(depth=1)
    new.adopt(old, model)
    assert addresses(new.free) == ["w2", "w0"] and addresses(new.second) == ["w1"]
    assert new.pinned("s") is w2 and all(i.model is model for i in (w0, w1, w2))
