"""Statistics in Triton's JSON shape."""
import pytest

from tritond.errors import Code, TritonError
from tritond.scheduler.core import SchedulerCore

from .helpers import MS, config, dispatches, executed, request, table


def batched_core() -> SchedulerCore:
    core = SchedulerCore(epoch_offset_ns=1_700_000_000_000 * MS)
    core.set_models(table(("m", 1, config(8, {}), ["w0"]), ("other", 2, config(), ["w9"]),
                          ("loading", 1, config(), [], "LOADING")))
    return core


def test_batching_statistics():
    core = batched_core()
    core.add(request(0, batch=1, arrival_ns=100), 1000)
    core.add(request(1, batch=2, arrival_ns=200), 1000)
    (d,) = dispatches(core.step(5000))
    core.executed(executed(d, compute=(10, 100, 1000), end=9000), 10 * MS)
    core.add(request(2, batch=4, arrival_ns=20 * MS), 20 * MS)
    (d,) = dispatches(core.step(20 * MS + 500))
    core.executed(executed(d, compute=(1, 2, 3), end=21 * MS), 21 * MS)

    (s,) = core.stats_json("m")["model_stats"]
    assert (s["name"], s["version"]) == ("m", "1")
    assert s["inference_count"] == 7 and s["execution_count"] == 2
    assert s["last_inference"] == 1_700_000_000_000 + 21
    inf = s["inference_stats"]
    assert inf["success"] == {"count": 3, "ns": (9000 - 100) + (9000 - 200) + MS - 0}
    assert inf["queue"] == {"count": 3, "ns": (5000 - 100) + (5000 - 200) + 500}
    assert inf["compute_input"] == {"count": 3, "ns": 10 * 2 + 1}
    assert inf["compute_infer"] == {"count": 3, "ns": 100 * 2 + 2}
    assert inf["compute_output"] == {"count": 3, "ns": 1000 * 2 + 3}
    assert inf["fail"] == {"count": 0, "ns": 0}
    assert inf["cache_hit"] == {"count": 0, "ns": 0}
    assert [b["batch_size"] for b in s["batch_stats"]] == [3, 4]
    assert s["batch_stats"][0]["compute_infer"] == {"count": 1, "ns": 100}
    assert s["response_stats"] == {} and s["memory_usage"] == []


def test_failures_counted():
    core = batched_core()
    core.add(request(0, batch=1), 0)
    core.add(request(1, batch=1), 0)
    (d,) = dispatches(core.step(0))
    core.executed(executed(d, failed=[1]), 10)
    (s,) = core.stats_json("m", "1")["model_stats"]
    assert s["inference_stats"]["success"]["count"] == 1
    assert s["inference_stats"]["fail"]["count"] == 1
    assert s["inference_stats"]["queue"]["count"] == 1
    assert s["execution_count"] == 1 and s["inference_count"] == 2


def test_all_ready_models_listed_sorted():
    core = batched_core()
    names = [(s["name"], s["version"]) for s in core.stats_json()["model_stats"]]
    assert names == [("m", "1"), ("other", "2")]
    assert core.stats_json()["model_stats"][1]["batch_stats"] == []


@pytest.mark.parametrize("name,version", [("nope", ""), ("loading", ""), ("m", "7")])
def test_unavailable_model_is_invalid_arg(name, version):
    with pytest.raises(TritonError) as info:
        batched_core().stats_json(name, version)
    assert info.value.code == Code.INVALID_ARG
    assert info.value.message == f"requested model '{name}' is not available"


def test_response_stats_from_workers():
    from tritond import messages
    core = batched_core()
    row = [1, 10, 1, 2, 1, 12, 0, 0, 0, 0, 0, 0]
    core.responses_sent(messages.ResponseStats("w0", [(0, row), (1, row)]))
    core.responses_sent(messages.ResponseStats("w0", [(0, row)]))
    core.responses_sent(messages.ResponseStats("gone", [(0, row)]))   # ignored
    (s,) = core.stats_json("m")["model_stats"]
    assert s["response_stats"]["0"] == {
        "compute_infer": {"count": 2, "ns": 20}, "compute_output": {"count": 2, "ns": 4},
        "success": {"count": 2, "ns": 24}, "fail": {"count": 0, "ns": 0},
        "empty_response": {"count": 0, "ns": 0}, "cancel": {"count": 0, "ns": 0}}
    assert s["response_stats"]["1"]["success"] == {"count": 1, "ns": 12}


def test_a_restart_counts_anew_while_the_totals_carry_on():
    """A version loaded anew (ModelStats.restart): the stats API's counters start at zero,
    /metrics' (``totals``) keep adding, over two restarts."""
    from tritond.scheduler.stats import REJECTED, ModelStats
    s = ModelStats("m", 1)
    s.executed(2, 2, 10, 100, 1, 2, 3, now_ms=5)
    s.failed(1, 7, REJECTED)
    s = s.restart()
    doc = s.to_json()
    assert (doc["inference_count"], doc["execution_count"], doc["last_inference"]) == (0, 0, 0)
    assert doc["inference_stats"]["success"] == {"count": 0, "ns": 0} and not doc["batch_stats"]
    s.executed(1, 1, 10, 50, 1, 2, 3, now_ms=6)
    s = s.restart()
    s.executed(1, 1, 10, 50, 1, 2, 3, now_ms=7)
    total = s.to_json(totals=True)
    assert (total["inference_count"], total["execution_count"]) == (4, 3)
    assert total["inference_stats"]["success"]["count"] == 4
    assert total["inference_stats"]["fail"] == {"count": 1, "ns": 7}
    assert s.failures(totals=True)["REJECTED"] == 1 and s.failures()["REJECTED"] == 0
    assert s.to_json()["inference_count"] == 1
