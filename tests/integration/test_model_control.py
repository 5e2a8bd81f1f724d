"""Explicit model control on a real tritond, over HTTP and gRPC."""
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.test_http_infer import simple_inputs
from tests.server import REPO, Server

POLLING = "explicit model load / unload is not allowed if polling is enabled"


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name in ("simple", "identity_fp32"):
        shutil.copytree(REPO / name, repo / name)
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text('backend: "onnxruntime"\n')   # no model.onnx
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=simple",
                 "--load-model=nope", wait_ready=False)
    srv.wait("/v2/models/simple/ready")
    srv.repo = repo
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(explicit):
    c = httpclient.InferenceServerClient(explicit.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc(explicit):
    c = grpcclient.InferenceServerClient(explicit.grpc_url)
    yield c
    c.close()


def index(http):
    return {r["name"]: r for r in http.get_model_repository_index()}


def simple_works(http):
    a = np.ones((1, 16), np.int32)
    assert http.infer("simple", simple_inputs(a, a)).as_numpy("OUTPUT0").sum() == 32


def error_of(call, *args, **kw):
    with pytest.raises(InferenceServerException) as exc:
        call(*args, **kw)
    return exc.value


def test_start_loads_only_the_named_models(explicit, http):
    rows = index(http)
    assert rows["simple"]["state"] == "READY"
    assert rows["identity_fp32"] == {"name": "identity_fp32"}        # never loaded
    assert rows["nope"]["state"] == "UNAVAILABLE" and "not found" in rows["nope"]["reason"]
    assert "failed to load 'nope'" in explicit.output()
    assert not http.is_server_ready()          # a model asked for at start is missing
    # Clearing the failed name makes the server ready (strict readiness).
    http.unload_model("nope")
    assert http.is_server_ready()
    simple_works(http)


def test_load_and_unload_over_http(explicit, http):
    http.load_model("identity_fp32")
    assert http.is_model_ready("identity_fp32")      # answered after the table applied
    x = np.arange(5, dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", [5], "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_array_equal(http.infer("identity_fp32", [inp]).as_numpy("OUTPUT0"), x)
    workers = len(explicit.children())
    http.unload_model("identity_fp32")
    assert not http.is_model_ready("identity_fp32")
    row = index(http)["identity_fp32"]
    assert row["state"] == "UNAVAILABLE" and row["reason"] == "unloaded"
    assert http.is_server_ready()                    # unloaded on purpose: still ready
    err = error_of(http.infer, "identity_fp32", [inp])
    assert err.status() == "404"
    _wait(lambda: len(explicit.children()) == workers - 1)    # its worker was finalized


def test_unload_and_load_over_grpc(explicit, grpc, http):
    grpc.unload_model("simple")
    assert not grpc.is_model_ready("simple")
    assert index(http)["simple"]["reason"] == "unloaded"
    grpc.load_model("simple")
    assert grpc.is_model_ready("simple")
    simple_works(http)


def test_reload_with_config_override(explicit, grpc, http):
    cfg = http.get_model_config("simple")
    cfg["instance_group"] = [{"kind": "KIND_CPU", "count": 2}]
    before = set(explicit.children())
    grpc.load_model("simple", config=json.dumps(cfg))
    got = http.get_model_config("simple")
    assert sum(g["count"] for g in got["instance_group"]) == 2
    simple_works(http)
    # Only instance_group changed: as Triton (2.51+), the version is updated in place,
    # one new worker beside the serving one, which stays (tests/integration/test_reloads.py).
    _wait(lambda: len(set(explicit.children()) - before) == 1)
    assert before <= set(explicit.children())


def test_failed_reload_keeps_the_old_model(explicit, http):
    cfg = http.get_model_config("simple")
    cfg["default_model_filename"] = "missing.onnx"
    err = error_of(http.load_model, "simple", config=json.dumps(cfg))
    assert err.status() == "400" and "missing.onnx" in err.message()
    err = error_of(http.load_model, "simple", config='{"bogus_field": 1}')
    assert err.status() == "500" and "bogus_field" in err.message()
    assert "failed to load 'simple', failed to poll from model repository" in err.message()
    assert http.is_model_ready("simple")
    simple_works(http)


def test_load_errors(explicit, http, grpc):
    err = error_of(http.load_model, "ghost")
    assert err.status() == "500" and err.message().startswith(
        "failed to load 'ghost', failed to poll from model repository")
    err = error_of(http.load_model, "broken")
    assert err.status() == "400" and "model.onnx" in err.message()
    assert err.message().startswith("load failed for model 'broken': ")    # Triton's words
    row = index(http)["broken"]
    assert row["state"] == "UNAVAILABLE" and "model.onnx" in row["reason"]
    http.unload_model("broken")                      # readiness back for the next tests
    err = error_of(http.load_model, "simple", config="{}", files={"file:1/model.onnx": b"x"})
    assert err.status() == "501" and "'file:' parameters" in err.message()
    err = error_of(grpc.load_model, "simple", config="{}", files={"file:1/model.onnx": b"x"})
    assert err.status() == "StatusCode.UNIMPLEMENTED"
    http.unload_model("ghost")                       # nothing to unload: OK, as Triton
    assert http.is_server_ready()


def test_mode_none_refuses_load_and_unload(server):
    h = httpclient.InferenceServerClient(server.url)
    g = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        for call in (h.load_model, h.unload_model):
            err = error_of(call, "simple")
            assert err.status() == "503" and err.message() == POLLING
        for call in (g.load_model, g.unload_model):
            err = error_of(call, "simple")
            assert err.status() == "StatusCode.UNAVAILABLE" and POLLING in err.message()
        assert h.is_model_ready("simple")
    finally:
        h.close()
        g.close()


def test_load_model_star_must_be_alone():
    proc = subprocess.run([sys.executable, "-m", "tritond.cli", "--model-repository", str(REPO),
                           "--model-control-mode=explicit", "--load-model=*",
                           "--load-model=simple"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--load-model=* must be the only" in proc.stderr


def _wait(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
