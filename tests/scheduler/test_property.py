"""Property: every request gets exactly one outcome; no batch exceeds max_batch_size."""
from hypothesis import given, settings
from hypothesis import strategies as st

from tritond.scheduler.core import Dispatch, Notify, Reply

from .helpers import US, config, core_with, executed, request

ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 4), st.sampled_from([(4,), (5,)]),
              st.integers(0, 3), st.integers(0, 300)),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("done"), st.integers(0, 2)),
    st.tuples(st.just("tick"), st.integers(0, 200)),
), max_size=60)

policies = st.fixed_dictionaries({
    "max_queue_size": st.integers(0, 5),
    "default_timeout_microseconds": st.sampled_from([0, 50, 150]),
    "allow_timeout_override": st.booleans(),
    "timeout_action": st.sampled_from(["REJECT", "DELAY"]),
})


@settings(max_examples=150, deadline=None)
@given(ops=ops, max_batch=st.integers(0, 6), preferred=st.lists(st.integers(1, 6), max_size=2),
       delay=st.sampled_from([0, 100]), levels=st.integers(0, 2), policy=policies,
       dynamic=st.booleans(), n_inst=st.integers(1, 3), pipeline=st.booleans())
def test_exactly_one_outcome(ops, max_batch, preferred, delay, levels, policy, dynamic, n_inst,
                             pipeline):
    dyn = {"preferred_batch_size": [p for p in preferred if p <= max_batch],
           "max_queue_delay_microseconds": delay, "priority_levels": levels,
           "default_priority_level": levels, "default_queue_policy": policy}
    instances = [f"w{i}" for i in range(n_inst)]
    core = core_with(config(max_batch, dyn if dynamic else None), instances=tuple(instances))
    core.pipeline = pipeline
    depth = 1 if not pipeline else (2 if dynamic and max_batch else 4)   # model.PIPELINE_AHEAD_*
    outcomes: dict[int, int] = {}
    busy: dict[str, list[Dispatch]] = {}    # per instance, in execution order
    now = 0
    added = 0

    def absorb(out):
        for o in out:
            if isinstance(o, Reply):
                outcomes[o.response.rid] = outcomes.get(o.response.rid, 0) + 1
            elif isinstance(o, Notify):      # a cancel of a running request: no outcome
                assert o.address in busy, "cancel notice for an idle instance"
                (key,) = o.message.requests
                assert key[1] in {r.rid for d in busy[o.address] for r in d.execute.requests}
            else:
                held = busy.setdefault(o.address, [])
                assert len(held) < depth, "instance given one batch too many"
                held.append(o)
                size = sum(max(r.batch, 1) for r in o.execute.requests)
                assert size <= max(max_batch, 1)
                if not (dynamic and max_batch):
                    assert len(o.execute.requests) == 1
                for r in o.execute.requests:
                    outcomes[r.rid] = outcomes.get(r.rid, 0) + 1

    for op in ops:
        if op[0] == "add":
            _, batch, shape, prio, timeout = op
            b = min(batch, max_batch) if max_batch else 0
            absorb(core.add(request(added, batch=b, shape=shape, priority=prio,
                                    timeout_us=timeout), now))
            added += 1
        elif op[0] == "cancel":
            absorb(core.cancel("fe", op[1], now))
        elif op[0] == "done" and busy:
            addr = sorted(busy)[op[1] % len(busy)]
            absorb(core.executed(executed(_first(busy, addr)), now))
        elif op[0] == "tick":
            now += op[1] * US
        absorb(core.step(now))
        _check_queued(core)
    # drain: finish everything, let every window and timeout pass
    for _ in range(added + 2):
        for addr in list(busy):
            while addr in busy:
                absorb(core.executed(executed(_first(busy, addr)), now))
        now += 1000 * US
        absorb(core.step(now))
    assert core.next_deadline_ns() is None
    assert outcomes == {rid: 1 for rid in range(added)}


def _check_queued(core) -> None:
    """The dynamic batcher's running total of queued sizes matches its queue."""
    for model in core._models.values():
        policy = model.policy
        if hasattr(policy, "queued"):
            assert policy.queued == sum(e.size for e in policy.queue.walk())


def _first(busy: dict, addr: str) -> Dispatch:
    """The batch an instance finishes next (workers run them in order)."""
    held = busy[addr]
    d = held.pop(0)
    if not held:
        del busy[addr]
    return d
