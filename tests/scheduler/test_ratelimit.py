"""Triton's execution_count rate limiter (scheduler/ratelimit.py) through InstanceRouters."""
import json

import pytest

from tritond import messages
from tritond.scheduler.ratelimit import (RateLimiter, group_resources, instance_needs,
                                        load_error, parse_overrides)
from tritond.scheduler.router import Batch, InstanceRouter


class Model:
    def __init__(self, groups: list) -> None:
        self.config_json = json.dumps({"instance_group": groups})


def group(name: str, *resources, priority: int = 0) -> dict:
    return {"name": name, "count": 1, "rate_limiter": {
        "resources": [{"name": n, "count": c, "global": g} for n, c, g in resources],
        "priority": priority}}


def router(limiter, model, addresses, group_name) -> InstanceRouter:
    r = InstanceRouter(depth=1)
    r.limiter = limiter
    r.set_instances([messages.InstanceEntry(a, f"{group_name}_{i}", "CPU", 0)
                     for i, a in enumerate(addresses)], model)
    return r


def run(r: InstanceRouter):
    inst = r.idle()
    if inst is not None:
        r.assign(inst, Batch(inst, [], 1))
    return inst


def test_a_shared_resource_bounds_concurrency_across_models():
    limiter = RateLimiter()
    a = router(limiter, Model([group("a_0", ("R", 2, True))]), ["a0", "a1"], "a_0")
    b = router(limiter, Model([group("b_0", ("R", 1, True))]), ["b0"], "b_0")
    assert limiter.capacity == {("R", -1): 2}           # the largest count asked
    first = run(a)                                     # holds 2 of 2
    assert first is not None
    assert run(a) is None and run(b) is None           # nothing left for anyone
    assert a.behind() is None                          # no pipelining behind a holder
    a.finished(first)                                  # idle again: released
    assert run(b) is not None and run(a) is None       # b holds 1; a needs 2


def test_local_resources_are_per_device_and_overrides_win():
    limiter = RateLimiter(parse_overrides(["R:2"]))
    m = router(limiter, Model([group("m_0", ("R", 1, False))]), ["w0", "w1", "w2"], "m_0")
    assert limiter.capacity == {("R", 0): 2}
    assert run(m) and run(m) and run(m) is None


def test_instances_without_resources_are_never_held_back():
    limiter = RateLimiter()
    m = router(limiter, Model([{"name": "m_0", "count": 2}]), ["w0", "w1"], "m_0")
    assert run(m) and run(m)
    assert limiter.used == {}


def test_a_removed_instance_gives_its_resources_back():
    limiter = RateLimiter()
    model = Model([group("m_0", ("R", 1, True))])
    m = router(limiter, model, ["w0", "w1"], "m_0")
    run(m)
    assert run(m) is None
    m.set_instances([messages.InstanceEntry("w1", "m_0_1", "CPU", 0)], model)   # w0 died
    assert run(m).address == "w1"


def test_parsing():
    assert parse_overrides(["R:4", "S:2:1"]) == {("R", None): 4, ("S", 1): 2}
    with pytest.raises(ValueError, match="format"):
        parse_overrides(["R"])
    assert group_resources("") == {}
    assert group_resources(json.dumps({"instance_group": [group("g", ("R", 3, False),
                                                                 priority=2)]})) == {
        "g": ([("R", 3, False)], 2)}


def test_priority_weights_the_choice_among_a_models_idle_instances():
    limiter = RateLimiter()
    model = Model([group("fast", ("R", 1, False), priority=1),
                   group("slow", ("R", 1, False), priority=3)])
    r = InstanceRouter(depth=0)
    r.limiter = limiter
    r.set_instances([messages.InstanceEntry("s", "slow_0", "CPU", 0),
                     messages.InstanceEntry("f", "fast_0", "CPU", 1)], model)
    order = []
    for _ in range(8):
        inst = run(r)
        order.append(inst.address)
        r.finished(inst)
    assert order.count("f") == 6 and order.count("s") == 2      # 3 : 1, as Triton weighs them


def test_load_error_follows_tritons_registration_checks():
    needs = instance_needs(json.dumps({"instance_group": [group("m_0", ("R", 2, False),
                                                                ("G", 3, True))]}),
                           [("m_0_0", 0), ("m_0_1", 1)])
    assert needs == [(("R", 0), 2), (("G", -1), 3), (("R", 1), 2), (("G", -1), 3)]
    assert load_error(needs, [], {}) is None                 # no flags: the largest ask
    assert load_error(needs, [], parse_overrides(["R:2", "G:1:0", "G:3:5"])) is None
    # a per-device resource: its device's entry or the all-devices one, else 0
    assert load_error(needs, [], parse_overrides(["R:2:0", "G:3"])) == (
        'Resource count for "R" is limited to 0 which will prevent scheduling of one or '
        'more model instances, the minimum required count is 2')
    assert '"G" is limited to 1 ' in load_error(needs, [], parse_overrides(["R:2", "G:1"]))
    # one name both global and per device, across the loaded models
    assert load_error([(("G", 0), 1)], needs, {}) == (
        'Resource "G" is present as both global and device-specific resource in the model '
        'configuration.')
    assert load_error([(("H", 0), 1)], needs, {}) is None


def test_a_global_resources_capacity_is_the_largest_flag_of_its_name():
    limiter = RateLimiter(parse_overrides(["G:1:0", "G:3:5"]))
    router(limiter, Model([group("m_0", ("G", 1, True))]), ["w0"], "m_0")
    assert limiter.capacity == {("G", -1): 3}
