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
    (reply,) = replies(core.add(req, 0))         # the core's unknown-model error
    assert "Request for unknown model: 'a/b'" in reply.response.error.message
