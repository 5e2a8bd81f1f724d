"""--model-namespacing on a real tritond (issue 14), as Triton's qa/L0_model_namespacing:
each repository is a namespace; a name two namespaces serve loads once per namespace and
is ambiguous to clients (INVALID_ARG "There are 2 identifiers ..."), an ensemble step runs
its own namespace's model, a unique name is served as before (metrics gain a
``namespace`` label, an unknown name is INVALID_ARG). Repositories: namespace_repo.py."""
import shutil
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration import namespace_repo
from tests.integration.test_http_infer import simple_inputs
from tests.server import REPO, Server

UNKNOWN = "Request for unknown model: 'nope' is not found"
AMBIGUOUS = ("There are 2 identifiers of model '{}' in global map, model namespace must be "
             "provided to resolve ambiguity.")
A = np.arange(4, dtype=np.int32)
B = np.full(4, 10, dtype=np.int32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    addsub, subadd = namespace_repo.write(tmp_path_factory.mktemp("ns"))
    shutil.copytree(REPO / "simple", addsub / "simple")
    srv = Server([addsub, subadd], "--model-namespacing=true")
    srv.repos = (addsub, subadd)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(server):
    c = httpclient.InferenceServerClient(server.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


def infer(client, model, a=A, b=B):
    mod = grpcclient if isinstance(client, grpcclient.InferenceServerClient) else httpclient
    inputs = [mod.InferInput("INPUT0", [4], "INT32"), mod.InferInput("INPUT1", [4], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer(model, inputs)
    return (result.as_numpy("OUTPUT0").tolist(), result.as_numpy("OUTPUT1").tolist(),
            result.as_numpy("ORIGIN")[0].decode())


def addsub(origin):
    return ((A + B).tolist(), (A - B).tolist(), origin)


def subadd(origin):
    return ((A - B).tolist(), (A + B).tolist(), origin)


def origin(repo, name="composing_model"):
    return f"{name}|{repo / name}"


def test_both_copies_are_ready_and_listed_once_per_namespace(server, http, grpc):
    rows = http.get_model_repository_index()
    for name in ("composing_model", "simple_ensemble"):
        mine = [r for r in rows if r["name"] == name]
        assert mine == [{"name": name, "version": "1", "state": "READY"}] * 2
    assert [m.name for m in grpc.get_model_repository_index().models].count(
        "composing_model") == 2
    assert http.is_server_ready()
    assert {r["name"] for r in rows} >= {"simple_addsub", "simple_subadd", "bls",
                                         "composing_addsub", "composing_subadd", "simple"}


def test_each_ensemble_runs_its_own_namespace_copy(server, http, grpc):
    addsub_repo, subadd_repo = server.repos
    for client in (http, grpc):
        assert infer(client, "simple_addsub") == addsub(origin(addsub_repo))
        assert infer(client, "simple_subadd") == subadd(origin(subadd_repo))
        assert infer(client, "composing_addsub") == addsub(
            origin(addsub_repo, "composing_addsub"))
        assert infer(client, "composing_subadd") == subadd(
            origin(subadd_repo, "composing_subadd"))


def test_an_ambiguous_name_is_invalid_arg_for_every_model_api(server, http, grpc):
    name = "composing_model"
    want = AMBIGUOUS.format(name)
    http_calls = (lambda: infer(http, name), lambda: http.get_model_metadata(name),
                  lambda: http.get_model_config(name),
                  lambda: http.get_inference_statistics(name))
    for call in http_calls:
        with pytest.raises(InferenceServerException) as exc:
            call()
        assert exc.value.status() == "400" and exc.value.message() == want
    grpc_calls = (lambda: infer(grpc, name), lambda: grpc.get_model_metadata(name),
                  lambda: grpc.get_model_config(name),
                  lambda: grpc.get_inference_statistics(name), lambda: grpc.is_model_ready(name))
    for call in grpc_calls:
        with pytest.raises(InferenceServerException) as exc:
            call()
        assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert exc.value.message() == want
    assert not http.is_model_ready(name)       # HTTP: 400, which the client reads as False
    with pytest.raises(InferenceServerException) as exc:       # the ensemble name too
        infer(http, "simple_ensemble")
    assert exc.value.message() == AMBIGUOUS.format("simple_ensemble")
    key = f"{server.repos[0]}/composing_model"     # tritond's internal key is no name
    with pytest.raises(InferenceServerException) as exc:
        infer(grpc, key)
    assert exc.value.message() == f"Request for unknown model: '{key}' is not found"
    assert infer(http, "simple_addsub")[0] == (A + B).tolist()   # the server keeps going


def test_statistics_list_each_copy_under_its_name(http):
    infer(http, "simple_addsub")
    infer(http, "simple_subadd")
    stats = [s for s in http.get_inference_statistics()["model_stats"]
             if s["name"] == "composing_model"]
    assert len(stats) == 2 and all(s["inference_count"] >= 1 for s in stats)
    one = http.get_inference_statistics("simple_addsub")["model_stats"]
    assert [s["name"] for s in one] == ["simple_addsub"]


def test_bls_by_an_ambiguous_name_fails_by_a_unique_name_runs(http):
    def call(name):
        inp = httpclient.InferInput("NAME", [1], "BYTES")
        inp.set_data_from_numpy(np.array([name.encode()], dtype=object))
        result = http.infer("bls", [inp])
        return result.as_numpy("OUTPUT0").tolist(), result.as_numpy("ERROR")[0].decode()

    assert call("composing_addsub") == ((A + A).tolist(), "")
    assert call("composing_subadd") == ((A - A).tolist(), "")
    _, error = call("composing_model")
    assert error == AMBIGUOUS.format("composing_model")
    assert call("ready:composing_addsub")[1] == "True"
    assert AMBIGUOUS.format("composing_model") in call("ready:composing_model")[1]


def test_bls_by_an_internal_key_is_an_unknown_model(server, http):
    """A BLS model name is a model name: tritond's key of a namespaced model
    (``<repository>/<name>``) is no name, so it is Triton's unknown model, not that model."""
    def call(name):
        inp = httpclient.InferInput("NAME", [1], "BYTES")
        inp.set_data_from_numpy(np.array([name.encode()], dtype=object))
        result = http.infer("bls", [inp])
        return result.as_numpy("OUTPUT0").tolist(), result.as_numpy("ERROR")[0].decode()

    for key in (f"{server.repos[0]}/composing_addsub", f"{server.repos[1]}/composing_model",
                "addsub_repo/composing_addsub"):
        assert call(key) == ([0] * 4, f"Request for unknown model: '{key}' is not found")
        assert call(f"ready:{key}")[1] == "False"
    assert call("composing_addsub") == ((A + A).tolist(), "")   # the name still runs
    assert call("ready:composing_addsub")[1] == "True"


def test_logs_name_each_copy_as_tritons_do(server, http):
    """Triton logs a namespaced model as ``<repository>::<name>`` (ModelIdentifier);
    tritond's internal key (``<repository>/<name>``) never shows."""
    text = server.output()
    for repo in server.repos:
        assert f"successfully loaded '{repo}::composing_model' version 1" in text     # parent
        assert f"loaded '{repo}::composing_model' version 1 instance composing_model_0" in text
        assert f"| {repo}::composing_model " in text                               # the table
        assert f"{repo}/composing_model" not in text
    assert "| simple " not in text and f"| {server.repos[0]}::simple " in text


def test_a_unique_name_is_served(http, grpc):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    result = http.infer("simple", simple_inputs(a, a))
    assert (result.as_numpy("OUTPUT0") == 2 * a).all()
    assert grpc.get_model_metadata("simple").name == "simple"
    assert http.get_model_config("simple")["name"] == "simple"


def test_a_version_of_a_unique_name_is_served_and_errors_never_show_a_repository(http, grpc):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    result = http.infer("simple", simple_inputs(a, a), model_version="1")
    assert (result.as_numpy("OUTPUT0") == 2 * a).all()
    assert grpc.is_model_ready("simple", "1")
    assert http.get_model_metadata("simple", "1")["versions"] == ["1"]
    with pytest.raises(InferenceServerException) as exc:
        http.infer("simple", simple_inputs(a, a), model_version="7")
    assert exc.value.message() == "Request for unknown model: 'simple' version 7 is not found"


def test_an_unknown_name_is_invalid_arg_over_http_and_grpc(http, grpc):
    a = np.ones((1, 16), np.int32)
    with pytest.raises(InferenceServerException) as exc:
        http.infer("nope", simple_inputs(a, a))
    assert exc.value.status() == "400" and UNKNOWN in exc.value.message()
    with pytest.raises(InferenceServerException) as exc:
        grpc.get_model_metadata("nope")
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT" and UNKNOWN in exc.value.message()


def test_metrics_carry_the_namespace_of_each_model_and_copy(server, http):
    a = np.ones((1, 16), np.int32)
    http.infer("simple", simple_inputs(a, a))
    infer(http, "simple_addsub")
    infer(http, "simple_subadd")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        text = r.read().decode()
    addsub_repo, subadd_repo = server.repos
    assert f'nv_inference_count{{model="simple",namespace="{addsub_repo}",version="1"}}' in text
    per_model = [line for line in text.splitlines() if 'model="simple"' in line]
    assert per_model and all(f'namespace="{addsub_repo}"' in line for line in per_model)
    for repo in server.repos:
        assert (f'nv_inference_count{{model="composing_model",namespace="{repo}",'
                f'version="1"}}') in text
    assert "/composing_model" not in text        # keys never leak into labels


# ---------------------------------------------------------------- model control

def wait(pred, timeout=60.0, what="condition"):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except InferenceServerException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def rows_of(client, name):
    return [r for r in client.get_model_repository_index() if r["name"] == name]


def test_explicit_load_and_unload_act_on_every_namespace_copy(tmp_path):
    """Triton's ModelNamespaceExplicit: loading an ensemble loads its own namespace's
    composing model; a name is loaded / unloaded in every namespace holding it."""
    addsub_repo, subadd_repo = namespace_repo.write(tmp_path)
    srv = Server([addsub_repo, subadd_repo], "--model-namespacing=true",
                 "--model-control-mode=explicit")
    client = httpclient.InferenceServerClient(srv.url)
    try:
        assert rows_of(client, "composing_model") == [{"name": "composing_model"}] * 2
        client.load_model("simple_addsub")
        assert infer(client, "simple_addsub") == addsub(origin(addsub_repo))
        # only one copy loaded: the name is not ambiguous (Triton's global map)
        assert infer(client, "composing_model") == addsub(origin(addsub_repo))
        client.load_model("simple_subadd")
        assert infer(client, "simple_subadd") == subadd(origin(subadd_repo))
        assert infer(client, "simple_addsub") == addsub(origin(addsub_repo))
        with pytest.raises(InferenceServerException) as exc:
            infer(client, "composing_model")
        assert exc.value.message() == AMBIGUOUS.format("composing_model")

        client.load_model("simple_ensemble")          # both copies, each with its step
        assert [r["state"] for r in rows_of(client, "simple_ensemble")] == ["READY"] * 2
        assert infer(client, "composing_addsub")[0] == (A + B).tolist()
        assert infer(client, "composing_subadd")[0] == (A - B).tolist()
        with pytest.raises(InferenceServerException) as exc:
            infer(client, "simple_ensemble")
        assert exc.value.message() == AMBIGUOUS.format("simple_ensemble")

        client.load_model("composing_model")          # reloads both copies
        assert [r["state"] for r in rows_of(client, "composing_model")] == ["READY"] * 2
        client.unload_model("composing_model", unload_dependents=True)
        assert [r["state"] for r in rows_of(client, "composing_model")] == ["UNAVAILABLE"] * 2
        assert not client.is_model_ready("simple_addsub")
        assert not client.is_model_ready("simple_subadd")

        # Triton's test_dynamic_resolution: without its own copy, an ensemble links
        # the only one left; with it back, its own again.
        shutil.move(addsub_repo / "composing_model", tmp_path / "composing_model")
        client.load_model("simple_addsub")
        assert infer(client, "simple_addsub") == subadd(origin(subadd_repo))
        assert infer(client, "composing_model") == subadd(origin(subadd_repo))
        shutil.move(tmp_path / "composing_model", addsub_repo / "composing_model")
        client.load_model("simple_addsub")
        assert infer(client, "simple_addsub") == addsub(origin(addsub_repo))
        with pytest.raises(InferenceServerException) as exc:
            infer(client, "composing_model")
        assert exc.value.message() == AMBIGUOUS.format("composing_model")
    finally:
        client.close()
        srv.stop()


def test_poll_mode_relinks_ensembles_when_a_copy_goes_and_comes_back(tmp_path):
    """Triton's ModelNamespacePoll.test_dynamic_resolution."""
    addsub_repo, subadd_repo = namespace_repo.write(tmp_path)
    srv = Server([addsub_repo, subadd_repo], "--model-namespacing=true",
                 "--model-control-mode=poll", "--repository-poll-secs=1")
    client = httpclient.InferenceServerClient(srv.url)
    try:
        assert infer(client, "simple_addsub") == addsub(origin(addsub_repo))
        shutil.move(addsub_repo / "composing_model", tmp_path / "composing_model")
        wait(lambda: infer(client, "simple_addsub") == subadd(origin(subadd_repo)),
             what="simple_addsub linked to subadd's composing_model")
        assert rows_of(client, "composing_model") == [
            {"name": "composing_model", "version": "1", "state": "READY"}]
        assert infer(client, "composing_model") == subadd(origin(subadd_repo))
        assert infer(client, "simple_subadd") == subadd(origin(subadd_repo))

        shutil.move(tmp_path / "composing_model", addsub_repo / "composing_model")
        wait(lambda: infer(client, "simple_addsub") == addsub(origin(addsub_repo)),
             what="simple_addsub linked to its own composing_model again")
        assert infer(client, "simple_subadd") == subadd(origin(subadd_repo))
        with pytest.raises(InferenceServerException) as exc:
            infer(client, "composing_model")
        assert exc.value.message() == AMBIGUOUS.format("composing_model")
    finally:
        client.close()
        srv.stop()


def test_a_copy_that_failed_to_load_still_makes_the_name_ambiguous(tmp_path):
    """Triton keeps a model that failed to load in its global map, so the name stays
    ambiguous while the other namespace's copy is READY."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(REPO / "simple", good / "dup")
    cfg = good / "dup" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace('name: "simple"', 'name: "dup"'))
    (bad / "dup" / "1").mkdir(parents=True)
    (bad / "dup" / "config.pbtxt").write_text('name: "dup"\nbackend: "nonesuch"\n')
    srv = Server([good, bad], "--model-namespacing=true", "--strict-readiness=false")
    client = httpclient.InferenceServerClient(srv.url)
    try:
        assert sorted(r["state"] for r in rows_of(client, "dup")) == ["READY", "UNAVAILABLE"]
        with pytest.raises(InferenceServerException) as exc:
            client.get_model_metadata("dup")
        assert exc.value.message() == AMBIGUOUS.format("dup")
        assert exc.value.status() == "400"
    finally:
        client.close()
        srv.stop()
