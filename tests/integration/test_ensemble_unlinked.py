"""An ensemble whose composing model is unloaded is unloaded with it, as Triton's
dependency graph does (explicit mode, no ``unload_dependents``), and comes back when
that model is loaded again. Checked against Triton 2.51: the index row reads
UNAVAILABLE "unloaded" and requests and metadata answer "has no available versions"."""
from __future__ import annotations

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from tests.integration.pipeline_repo import write_repo
from tests.server import Server

NO_VERSIONS = "Request for unknown model: '{}' has no available versions"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server([write_repo(tmp_path_factory.mktemp("unlinked"), with_invalid=False)],
                 "--model-control-mode=explicit", "--load-model=chain", "--load-model=wrapped_chain")
    yield srv, httpclient.InferenceServerClient(srv.url)
    srv.stop()


def _rows(client):
    return {(r["name"], r.get("state"), r.get("reason")) for r in
            client.get_model_repository_index() if r["name"] in ("chain", "wrapped_chain", "add_sub")}


def _infer(srv, model):
    body = {"inputs": [{"name": n, "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}
                       for n in ("INPUT0", "INPUT1")]}
    return requests.post(f"http://{srv.url}/v2/models/{model}/infer", json=body, timeout=30)


def test_unloading_a_composing_model_unloads_its_ensembles_until_it_is_back(server):
    srv, client = server
    assert _infer(srv, "chain").status_code == 200
    client.unload_model("add_sub")                      # no unload_dependents
    assert _rows(client) == {("add_sub", "UNAVAILABLE", "unloaded"),
                             ("chain", "UNAVAILABLE", "unloaded"),
                             ("wrapped_chain", "UNAVAILABLE", "unloaded")}
    for model in ("chain", "wrapped_chain"):
        r = _infer(srv, model)
        assert (r.status_code, r.json()) == (404, {"error": NO_VERSIONS.format(model)})
        r = requests.get(f"http://{srv.url}/v2/models/{model}", timeout=30)
        assert (r.status_code, r.json()) == (404, {"error": NO_VERSIONS.format(model)})
    assert client.is_server_ready()                     # unloaded, as on purpose
    client.load_model("add_sub")
    assert _rows(client) == {("add_sub", "READY", None), ("chain", "READY", None),
                             ("wrapped_chain", "READY", None)}
    out = _infer(srv, "wrapped_chain").json()["outputs"]
    assert np.asarray(out[0]["data"]).shape == (4,)
