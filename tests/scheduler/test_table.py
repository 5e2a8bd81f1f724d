"""ModelTable.named (scheduler/table.py): a worker's BLS request names a model by its
name, a frontend's Request by its key (--model-namespacing, tritond/namespaces.py)."""
from tritond.errors import Code
from tritond.scheduler.core import SchedulerCore

from tests.scheduler.helpers import config, replies, request, table

ADDSUB = "/repos/addsub/composing_model"
SUBADD = "/repos/subadd/composing_model"
UNIQUE = "/repos/addsub/simple"


def _core() -> SchedulerCore:
    core = SchedulerCore()
    cfg = config()
    core.set_models(table((ADDSUB, 1, cfg, ["w0"]), (SUBADD, 1, cfg, ["w1"]),
                          (UNIQUE, 1, cfg, ["w2"])))
    return core


def test_a_bls_request_by_a_unique_name_gets_its_key():
    core = _core()
    req = request(1, model="simple", version=-1, batch=-1, frontend="@bls")
    assert core.table.named(req) == []
    assert req.model == UNIQUE


def test_a_bls_request_by_a_key_is_an_unknown_model_as_in_triton():
    core = _core()
    for key in (ADDSUB, UNIQUE, "a/b"):
        req = request(1, model=key, version=-1, batch=-1, frontend="@bls")
        (reply,) = replies(core.table.named(req))
        assert reply.frontend == "@bls"
        assert reply.response.error.code == Code.INVALID_ARG
        assert reply.response.error.message == f"Request for unknown model: '{key}' is not found"
        assert req.model == key


def test_a_bls_request_by_an_ambiguous_name_is_the_ambiguity_error():
    (reply,) = replies(_core().table.named(
        request(1, model="composing_model", version=-1, batch=-1, frontend="@bls")))
    assert reply.response.error.code == Code.INVALID_ARG
    assert reply.response.error.message.startswith("There are 2 identifiers of model "
                                                   "'composing_model' in global map")


def test_a_frontends_request_by_its_key_goes_through_untouched():
    core = _core()
    for batch in (0, 3):              # a frontend's batch is never negative
        req = request(1, model=ADDSUB, version=1, batch=batch)
        assert core.table.named(req) == [] and req.model == ADDSUB


def test_without_namespacing_names_are_keys_and_nothing_is_resolved():
    core = SchedulerCore()
    core.set_models(table(("simple", 1, config(), ["w0"])))
    req = request(1, model="a/b", version=-1, batch=-1, frontend="@bls")
    assert core.table.named(req) == [] and req.model == "a/b"
    (reply,) = replies(core.add(req, 0))         # python_backend's not-ready refusal
    assert "Model 'a/b' is not ready." in reply.response.error.message


def test_a_dead_instances_pipelined_request_the_client_cancelled_is_not_run_again():
    """A request cancelled while it waited behind its instance's running batch (the
    worker would have skipped it) is answered CANCELLED when that instance dies,
    counted CANCELED, rather than requeued and run on the restarted instance."""
    from tests.scheduler.helpers import dispatches
    core = SchedulerCore(pipeline=True)
    core.set_models(table(("m", 1, config(1), ["w0"])))
    core.add(request(1, batch=1), 0)
    (d1,) = dispatches(core.step(0))
    core.add(request(2, batch=1), 1)
    (d2,) = dispatches(core.step(1))                   # 2 waits in the worker behind 1
    assert [r.rid for r in d2.execute.requests] == [2]
    assert len(core.cancel("fe", 2, 2)) == 1           # the worker is told: it would skip 2
    out = core.set_models(table(("m", 1, config(1), [])))      # w0 died
    out += core.set_models(table(("m", 1, config(1), ["w0"])))  # and restarts
    codes = {r.response.rid: r.response.error.code for r in replies(out)}
    assert codes == {1: Code.UNAVAILABLE, 2: Code.CANCELLED}
    core.add(request(3, batch=1), 3)
    runs = [r.rid for o in (out, core.step(3)) for d in dispatches(o)
            for r in d.execute.requests]
    assert runs == [3]
    (m,) = core.metrics()
    assert m.failures["CANCELED"] == 1
