"""Default scheduler and dynamic batch formation."""
from tritond import messages
from tritond.errors import Code

from .helpers import (MS, US, config, core_with, dispatches, executed, replies, request,
                      rids, table)


def test_default_scheduler_fifo_over_instances():
    core = core_with(config(max_batch_size=8), instances=("w0", "w1"))
    for rid in range(4):
        assert core.add(request(rid, batch=1), now_ns=rid) == []
    out = core.step(10)
    ds = dispatches(out)
    # no dynamic_batching: one request per execution, both instances busy, FIFO
    assert [(d.address, rids(d)) for d in ds] == [("w0", [0]), ("w1", [1])]
    assert core.step(11) == []
    core.executed(executed(ds[1]), 12)
    ds2 = dispatches(core.step(12))
    assert [(d.address, rids(d)) for d in ds2] == [("w1", [2])]
    core.executed(executed(ds[0]), 13)
    assert [(d.address, rids(d)) for d in dispatches(core.step(13))] == [("w0", [3])]


def test_round_robin_uses_longest_idle_instance():
    core = core_with(config(), instances=("w0", "w1", "w2"))
    core.add(request(0), 0)
    (d0,) = dispatches(core.step(0))
    core.executed(executed(d0), 1)
    core.add(request(1), 2)
    (d1,) = dispatches(core.step(2))
    assert (d0.address, d1.address) == ("w0", "w1")


def test_many_models_run_at_once():
    core = core_with(config())
    core.set_models(table(("a", 1, config(), ["wa"]), ("b", 1, config(), ["wb"])))
    core.add(request(0, model="a"), 0)
    core.add(request(1, model="b"), 0)
    assert sorted(d.address for d in dispatches(core.step(0))) == ["wa", "wb"]


def test_unknown_model_rejected():
    core = core_with(config())
    (reply,) = core.add(request(0, model="nope"), 0)
    assert reply.frontend == "fe" and reply.response.rid == 0
    assert reply.response.error.code == Code.UNAVAILABLE
    assert "nope" in reply.response.error.message


def test_bls_requests_for_no_ready_version_get_python_backends_refusal():
    # A BLS request (batch -1, version -1 for "latest"): python_backend's request executor
    # asks ModelIsReady first and words the refusal (checked against Triton 2.51)
    core = core_with(config())
    core.set_models(table(("m", 2, config(), ["w2"])))

    def error(**kw):
        (reply,) = core.add(request(0, batch=-1, **kw), 0)
        return reply.response.error.code, reply.response.error.message

    def refusal(name):
        return (Code.INTERNAL, f"Model {name} - Error when running inference: Failed for "
                f"execute the inference request. Model '{name}' is not ready.")

    assert error(model="ghost", version=-1) == refusal("ghost")
    assert error(model="m", version=7) == refusal("m")
    core.set_models(table(("m", 2, config(), ["w2"], "UNLOADING")))
    assert error(model="m", version=-1) == refusal("m")
    assert error(model="m", version=2) == refusal("m")


def test_a_unary_bls_request_to_a_decoupled_model_is_refused_as_by_python_backend():
    io = {"input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1, 4]}]}
    core = core_with(config(model_transaction_policy={"decoupled": True}, **io))

    def bls(rid, unary):
        req = request(rid, batch=-1, version=-1, shape=(2, 4))
        req.unary = unary
        return core.add(req, 0)

    (reply,) = bls(0, True)                 # exec(): one response expected
    assert reply.response.error.code == Code.INTERNAL
    assert reply.response.error.message.startswith(
        "Model m - Error when running inference: Model m is using the decoupled. The current "
        "BLS request call doesn't support")
    assert bls(1, False) == []              # exec(decoupled=True): queued
    plain = core_with(config(**io))
    req = request(2, batch=-1, version=-1, shape=(2, 4))
    req.unary = True
    assert plain.add(req, 0) == []          # a model that is not decoupled takes it


def test_requests_name_their_resolved_version():
    # The frontend resolves "latest" (one lookup per request): the scheduler
    # routes by the exact version and has no fallback of its own.
    core = core_with(config())
    core.set_models(table(("m", 1, config(), ["w1"]), ("m", 3, config(), ["w3"])))
    core.add(request(0, version=1), 0)
    assert [d.address for d in dispatches(core.step(0))] == ["w1"]
    (r,) = core.add(request(1, version=0), 0)
    assert r.response.error.message == (
        "Request for unknown model: 'm' version 0 is not at ready state")


def test_preferred_size_sent_at_once():
    cfg = config(8, {"preferred_batch_size": [2, 4], "max_queue_delay_microseconds": 1000})
    core = core_with(cfg)
    for rid in range(5):
        core.add(request(rid, batch=1), 0)
    (d,) = dispatches(core.step(0))
    assert rids(d) == [0, 1, 2, 3]          # the largest preferred size it can
    assert d.execute.batch_id == 1


def test_delay_window_respected():
    cfg = config(8, {"preferred_batch_size": [4], "max_queue_delay_microseconds": 500})
    core = core_with(cfg)
    core.add(request(0, batch=1), 1000)
    core.add(request(1, batch=1), 1000 + 100 * US)
    assert core.step(1000 + 100 * US) == []
    assert core.next_deadline_ns() == 1000 + 500 * US
    assert core.step(1000 + 499 * US) == []
    (d,) = dispatches(core.step(1000 + 500 * US))
    assert rids(d) == [0, 1]
    assert core.next_deadline_ns() is None


def test_no_delay_sends_what_is_there():
    core = core_with(config(8, {}))
    core.add(request(0, batch=1), 0)
    core.add(request(1, batch=2), 0)
    (d,) = dispatches(core.step(0))
    assert rids(d) == [0, 1]


def test_mismatched_shapes_never_batched():
    core = core_with(config(8, {"max_queue_delay_microseconds": 100}), instances=("w0", "w1"))
    core.add(request(0, batch=1, shape=(4,)), 0)
    core.add(request(1, batch=1, shape=(5,)), 0)
    core.add(request(2, batch=1, shape=(4,)), 0)
    core.add(request(3, batch=1, shape=(4,), dtype="INT32"), 0)
    ds = dispatches(core.step(0))
    # the mismatch ends the batch (FIFO kept): [0] goes now, then [1] alone
    assert [rids(d) for d in ds] == [[0], [1]]
    for d in ds:
        core.executed(executed(d), 1)
    ds = dispatches(core.step(1))
    assert [rids(d) for d in ds] == [[2]]   # [3] alone waits for its window
    assert [rids(d) for d in dispatches(core.step(100 * US))] == [[3]]


def test_batch_dim_may_differ():
    core = core_with(config(8, {}))
    core.add(request(0, batch=3, shape=(4,)), 0)
    core.add(request(1, batch=1, shape=(4,)), 0)
    (d,) = dispatches(core.step(0))
    assert rids(d) == [0, 1]


def test_max_batch_size_counts_request_batches():
    cfg = config(4, {"max_queue_delay_microseconds": 10})
    core = core_with(cfg)
    for rid, b in enumerate([3, 2, 2, 1]):
        core.add(request(rid, batch=b), 0)
    (d,) = dispatches(core.step(0))
    assert rids(d) == [0]                   # 3 + 2 > 4
    core.executed(executed(d), 1)
    (d,) = dispatches(core.step(1))
    assert rids(d) == [1, 2]                # 2 + 2 = 4
    core.executed(executed(d), 2)
    assert core.step(2) == []               # 1 < 4: wait for the window
    (d,) = dispatches(core.step(10 * US))
    assert rids(d) == [3]


def test_window_closed_sends_past_largest_preferred():
    cfg = config(8, {"preferred_batch_size": [2], "max_queue_delay_microseconds": 100})
    core = core_with(cfg)
    core.set_models(table(("m", 1, cfg, [])))        # no instance yet: requests wait
    for rid in range(5):
        core.add(request(rid, batch=1), 0)
    core.set_models(table(("m", 1, cfg, ["w0"])))
    (d,) = dispatches(core.step(200 * US))
    assert rids(d) == [0, 1, 2, 3, 4]       # Triton: window closed -> all pending (<= max)


def test_max_batch_size_zero_never_batches():
    core = core_with(config(0, {"max_queue_delay_microseconds": 100}))
    core.add(request(0), 0)
    core.add(request(1), 0)
    (d,) = dispatches(core.step(0))
    assert rids(d) == [0]


def test_queued_requests_wait_for_busy_instance():
    core = core_with(config(8, {}))
    core.add(request(0, batch=1), 0)
    (d,) = dispatches(core.step(0))
    for rid in (1, 2, 3):
        core.add(request(rid, batch=1), 1)
    assert core.step(1) == []
    core.executed(executed(d), 2)
    (d,) = dispatches(core.step(2))
    assert rids(d) == [1, 2, 3]


def test_execute_carries_releases():
    core = core_with(config())
    core.release(messages.Release(instance="w0", slots=[("seg", 64)]))
    core.add(request(0), 0)
    (d,) = dispatches(core.step(0))
    assert d.execute.releases == [("seg", 64)]


def test_stale_executed_ignored():
    core = core_with(config())
    core.add(request(0), 0)
    (d,) = dispatches(core.step(0))
    wrong = executed(d)
    wrong.batch_id += 100
    assert core.executed(wrong, 1) == []
    core.add(request(1), 1)
    assert core.step(1) == []               # still busy
    assert replies(core.executed(executed(d), 2)) == []
    assert rids(dispatches(core.step(2))[0]) == [1]


def test_executed_time_unit_ms():
    assert MS == 1000 * US


def test_resumed_walk_sees_new_requests():
    """While a window fills, each step resumes the previous walk (no re-walk)."""
    cfg = config(8, {"preferred_batch_size": [3], "max_queue_delay_microseconds": 1000})
    core = core_with(cfg)
    core.add(request(0, batch=1), 0)
    assert core.step(1) == []
    core.add(request(1, batch=1), 2)
    assert core.step(3) == []
    core.add(request(2, batch=1, shape=(9,)), 4)        # mismatch: ends the batch now
    (d,) = dispatches(core.step(5))
    assert rids(d) == [0, 1]
    core.executed(executed(d), 6)
    core.add(request(3, batch=1, shape=(9,)), 7)
    assert core.step(8) == []
    core.cancel("fe", 3, 9)                             # a removal invalidates the cache
    core.add(request(4, batch=2, shape=(9,)), 10)
    (d,) = dispatches(core.step(11))
    assert rids(d) == [2, 4]                            # 1 + 2 = preferred 3



def test_pipelining_queues_ready_requests_behind_a_busy_instance():
    core = core_with(config())
    core.pipeline = True
    for rid in range(5):
        core.add(request(rid), now_ns=rid)
    ds = dispatches(core.step(10))
    # one executing and three waiting in the worker's socket; the fifth stays queued
    assert [(d.address, rids(d)) for d in ds] == [("w0", [0]), ("w0", [1]), ("w0", [2]), ("w0", [3])]
    assert dispatches(core.executed(executed(ds[0]), 20)) == []
    refill = dispatches(core.step(21))
    assert [rids(d) for d in refill] == [[4]]            # behind [3]
    for d in ds[1:] + refill:
        core.executed(executed(d), 30)
    assert dispatches(core.step(32)) == [] and core.stats_json()["model_stats"][0]["execution_count"] == 5


def test_pipelining_only_full_batches_when_batching():
    core = core_with(config(max_batch_size=4, dynamic={"preferred_batch_size": [4]}))
    core.pipeline = True
    for rid in range(7):
        core.add(request(rid, batch=1), now_ns=rid)
    ds = dispatches(core.step(10))
    # a full batch runs; the 3 left would make a partial batch: they wait to grow
    assert [rids(d) for d in ds] == [[0, 1, 2, 3]]
    core.add(request(7, batch=1), now_ns=11)
    assert [rids(d) for d in dispatches(core.step(12))] == [[4, 5, 6, 7]]   # full: pipelined


def test_dead_instance_fails_what_ran_and_requeues_what_waited_behind_it():
    core = core_with(config(), instances=("w0", "w1"))
    core.pipeline = True
    for rid in range(4):
        core.add(request(rid), now_ns=rid)
    ds = dispatches(core.step(10))
    assert [(d.address, rids(d)) for d in ds] == [("w0", [0]), ("w1", [1]), ("w0", [2]), ("w1", [3])]
    out = core.set_models(table(("m", 1, config(), ["w1"])))      # w0 died
    assert [r.response.rid for r in replies(out)] == [0]             # only what it executed
    core.executed(executed(ds[1]), 20)
    # [2] never ran: back at the front of the queue, pipelined behind [3] on w1
    assert [rids(d) for d in dispatches(core.step(21))] == [[2]]
    out = core.set_models(table(("m", 1, config(), [], "UNAVAILABLE")))  # the model went
    assert sorted(r.response.rid for r in replies(out)) == [2, 3]


def test_ragged_inputs_batch_despite_different_shapes():
    cfg = config(max_batch_size=4, dynamic={"preferred_batch_size": [3]},
                 input=[{"name": "INPUT0", "allow_ragged_batch": True}])
    core = core_with(cfg)
    for rid, n in enumerate((4, 7, 9)):
        core.add(request(rid, batch=1, shape=(n,)), now_ns=rid)
    assert [rids(d) for d in dispatches(core.step(10))] == [[0, 1, 2]]
    strict = core_with(config(max_batch_size=4, dynamic={"preferred_batch_size": [3]}))
    for rid, n in enumerate((4, 7, 9)):
        strict.add(request(rid, batch=1, shape=(n,)), now_ns=rid)
    assert [rids(d) for d in dispatches(strict.step(10))] == [[0]]
