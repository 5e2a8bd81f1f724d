"""What tritonclient's simple_{http,grpc}_model_control.py examples do, and the status codes
and texts Triton gives for readiness and load/unload (each case checked on both protocols)."""
import shutil

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from shm import cuda as shm_cuda
from tests.server import REPO, Server

POLL = "failed to poll from model repository"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name in ("simple", "identity_fp32"):
        shutil.copytree(REPO / name, repo / name)
    srv = Server([repo], "--model-control-mode=explicit", "--allow-client-shm=true")
    srv.repo = repo
    yield srv
    srv.stop()


@pytest.fixture(scope="module", params=["http", "grpc"])
def client(request, server):
    if request.param == "http":
        c = httpclient.InferenceServerClient(server.url)
    else:
        c = grpcclient.InferenceServerClient(server.grpc_url)
    c.protocol = request.param
    yield c
    c.close()


def error_of(call, *args, **kw) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as exc:
        call(*args, **kw)
    return exc.value


def status(c, http: str, grpc: str) -> str:
    return http if c.protocol == "http" else f"StatusCode.{grpc}"


def max_batch_size(c, name: str) -> int:
    cfg = c.get_model_config(name)
    return cfg["max_batch_size"] if c.protocol == "http" else cfg.config.max_batch_size


def test_the_official_model_control_example(client):
    """simple_{http,grpc}_model_control.py, step by step (current client revision)."""
    client.load_model("simple")
    assert client.is_model_ready("simple")
    # A config override in the wrong format: "failed to load".
    err = error_of(client.load_model, "simple",
                   config='"parameters": {"config": {{"max_batch_size": "16"}}}')
    assert "failed to load" in err.message()
    assert client.is_model_ready("simple")                     # the loaded one kept serving
    client.load_model("simple", config='{"max_batch_size":"16"}')
    assert max_batch_size(client, "simple") == 16
    client.unload_model("simple")
    assert not client.is_model_ready("simple")                 # no exception: ready=false
    # A path component longer than NAME_MAX: INTERNAL, the server stays up.
    err = error_of(client.load_model, "simple", config="{}", files={"file:" + "A" * 256: b"a"})
    assert err.status() == status(client, "500", "INTERNAL") and POLL in err.message()
    assert client.is_server_live()
    err = error_of(client.load_model, "wrong_model_name")
    assert "failed to load" in err.message()


def test_model_ready_of_unknown_never_loaded_and_missing_versions(client):
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready("identity_fp32")          # in the repository, never loaded
    client.load_model("identity_fp32")
    try:
        assert client.is_model_ready("identity_fp32") and client.is_model_ready("identity_fp32", "1")
        assert not client.is_model_ready("identity_fp32", "9")
    finally:
        client.unload_model("identity_fp32")


def test_model_ready_with_a_bad_version_string(client, server):
    if client.protocol == "http":      # httpclient only answers a bool: read the reply itself
        import urllib.error
        import urllib.request
        with pytest.raises(urllib.error.HTTPError) as exc:    # Triton's routes: [0-9]+ only
            urllib.request.urlopen(f"http://{server.url}/v2/models/simple/versions/x/ready")
        assert (exc.value.code, exc.value.read()) == (404, b'{"error":"Not Found"}')
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://{server.url}/v2/models/nope/ready")
        assert (exc.value.code, exc.value.read()) == (400, b'{"error":"Model version not ready"}')
    else:
        err = error_of(client.is_model_ready, "simple", "x")
        assert err.status() == "StatusCode.INVALID_ARGUMENT"
        assert err.message() == ("failed to get model version from specified version string 'x' "
                                 "(details: stol), version should be an integral value > 0")


def test_loading_a_model_that_does_not_exist(client):
    err = error_of(client.load_model, "ghost")
    assert err.status() == status(client, "500", "INTERNAL")
    assert err.message().startswith("failed to load 'ghost', failed to poll from model repository")


def test_unloading_a_model_that_does_not_exist_is_ok(client):
    client.unload_model("ghost")
    client.unload_model("identity_fp32")                       # known, not loaded


def test_override_errors_are_poll_failures(client):
    err = error_of(client.load_model, "simple", config="{not json")
    assert err.status() == status(client, "500", "INTERNAL")
    assert err.message().startswith("failed to load 'simple', failed to poll from model "
                                    "repository: Invalid config override:")
    err = error_of(client.load_model, "simple", config="{}", files={"file:../x": b"a"})
    assert err.status() == status(client, "500", "INTERNAL")
    assert "must stay within model directory" in err.message()
    err = error_of(client.load_model, "simple", files={"file:1/model.onnx": b"a"})
    assert "Load parameter 'config' must be specified for model file override" in err.message()


def test_an_unparsable_config_file_is_a_poll_failure(client, server, tmp_path):
    bad = server.repo / "bad_config"
    (bad / "1").mkdir(parents=True, exist_ok=True)
    (bad / "config.pbtxt").write_text('name: "bad_config" backend: "python" max_batch_size: [')
    err = error_of(client.load_model, "bad_config")
    assert err.status() == status(client, "500", "INTERNAL")
    assert err.message().startswith("failed to load 'bad_config', failed to poll from model "
                                    "repository: ")


def test_valid_file_overrides_are_refused_as_unsupported(client):
    err = error_of(client.load_model, "simple", config="{}", files={"file:1/model.onnx": b"x"})
    assert err.status() == status(client, "501", "UNIMPLEMENTED")
    assert "'file:' parameters is not supported by tritond" in err.message()


def test_invalid_model_names(client):
    err = error_of(client.load_model, " ")
    if client.protocol == "http":
        # tritonclient quotes the name and Triton takes the path as sent: model "%20"
        assert err.status() == "500" and err.message().startswith(f"failed to load '%20', {POLL}")
    else:
        assert err.status() == status(client, "400", "INVALID_ARGUMENT")
        assert err.message() == "Model name cannot be empty. Please enter a valid name to deploy."
    for name in ("model..1", "..my_model"):                    # valid names, not in the repo
        err = error_of(client.load_model, name)
        assert POLL in err.message() and "path traversal" not in err.message()


def _post(server, path: str, body: bytes):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://{server.url}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_load_parameters_as_triton_reads_them(server):
    path = "/v2/repository/models/simple/load"
    assert _post(server, path, b'{"parameters": {"other": "x"}}') == (
        500, b'{"error":"unexpected error on creating Triton parameter"}')
    assert _post(server, path, b'{"parameters": {"config": {"max_batch_size": 4}}}') == (
        500, b'{"error":"attempt to access JSON non-string as string"}')
    code, body = _post(server, path, b'{"parameters": {"config": "{}", "file:1/m": "!!"}}')
    assert code == 400 and b"failed to decode base64 value of 'file:1/m'" in body


def test_server_extensions_in_tritons_order(client):
    md = client.get_server_metadata()
    ext = list(md["extensions"] if client.protocol == "http" else md.extensions)
    cuda_shm = ["cuda_shared_memory"] if shm_cuda.available() else []   # a GPU host's
    assert ext == ["classification", "sequence", "model_repository",
                   "model_repository(unload_dependents)",
                   "schedule_policy", "model_configuration", "system_shared_memory",
                   *cuda_shm,
                   "binary_tensor_data", "parameters", "statistics", "trace", "logging"]
