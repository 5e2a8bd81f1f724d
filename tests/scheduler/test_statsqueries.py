"""Statistics queries wait for the batches executing when they arrived (pure)."""
from types import SimpleNamespace as NS

from tritond.scheduler.statsqueries import WAIT_NS, StatsQueries


def instances(**busy):
    """address -> instance of model ``name`` running batch ``id`` (None: idle)."""
    return {addr: NS(busy=None if b is None else NS(batch_id=b[1]),
                     model=NS(stats=NS(name=b[0] if b else "m")))
            for addr, b in busy.items()}


def test_a_query_with_nothing_running_is_due_at_once():
    q = StatsQueries()
    query = NS(name="m")
    assert not q.add(query, instances(w0=None), 0)
    assert q.due(instances(w0=None), 0) == [query] and not q


def test_a_query_waits_for_the_batches_running_when_it_came_not_later_ones():
    q = StatsQueries()
    query = NS(name="m")
    assert q.add(query, instances(w0=("m", 1), w1=("m", 2)), 0)
    assert q.due(instances(w0=("m", 3), w1=("m", 2)), 1) == []      # 1 done, 3 is new
    assert q.due(instances(w0=("m", 3), w1=("m", 4)), 2) == [query]


def test_only_the_queried_models_batches_count_and_an_empty_name_is_every_model():
    q = StatsQueries()
    mine, every = NS(name="m"), NS(name="")
    running = instances(w0=("other", 1))
    assert not q.add(mine, running, 0)
    assert q.add(every, running, 0)
    assert q.due(running, 1) == [mine]
    assert q.due(instances(w0=None), 2) == [every]


def test_a_long_execution_holds_a_query_no_longer_than_the_bound():
    q = StatsQueries()
    query = NS(name="m")
    running = instances(w0=("m", 1))
    q.add(query, running, 100)
    assert q.next_deadline_ns() == 100 + WAIT_NS
    assert q.due(running, 100 + WAIT_NS - 1) == []
    assert q.due(running, 100 + WAIT_NS) == [query]
    assert q.next_deadline_ns() is None


def test_queries_are_answered_in_arrival_order():
    q = StatsQueries()
    first, second = NS(name="m"), NS(name="m")
    q.add(first, instances(w0=("m", 1)), 0)
    q.add(second, instances(w0=("m", 1)), 0)
    assert q.due(instances(w0=None), 1) == [first, second]


def test_a_query_waits_for_the_ensemble_requests_still_to_be_counted_when_it_came():
    q = StatsQueries()
    query = NS(name="ens")
    uncounted = {"ens": {("ensemble", "fe", 1)}}
    ens = NS(uncounted=lambda name: uncounted.get(name, set()))
    assert q.add(query, instances(w0=None), 0, ens)
    uncounted["ens"] = {("ensemble", "fe", 2)}      # a later request does not hold it
    assert q.due(instances(w0=None), 1, ens) == [query]
