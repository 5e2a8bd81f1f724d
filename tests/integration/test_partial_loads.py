"""A load whose versions partly fail serves none of them (core's ModelLifeCycle::
OnLoadFinal: "If any of the versions fails to load, abort the load and unload all newly
loaded versions"): the failed version keeps its reason, every version the load brought up
ends UNAVAILABLE "unloaded"; versions that served before a reload keep serving. An
ensemble on such a model finds no loaded version (CheckNode)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.test_load_stages import MODEL_PY, OK_CONFIG, TWOFAIL_PY, _load_error
from tests.server import Server

ENSEMBLE = '''platform: "ensemble"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]
ensemble_scheduling { step [ { model_name: "halffail" model_version: -1
  input_map { key: "X" value: "X" } output_map { key: "Y" value: "Y" } } ] }
'''


def _repo(root, name, versions):
    """``name`` with a version directory per {version: ok?}; a failing one fails at once."""
    for version, ok in versions.items():
        (root / name / str(version)).mkdir(parents=True)
        (root / name / str(version) / "model.py").write_text(
            MODEL_PY if ok else TWOFAIL_PY % (0, version))
    (root / name / "config.pbtxt").write_text(OK_CONFIG + "version_policy { all {} }\n")


def _rows(client, name):
    return {r["version"]: (r.get("state"), r.get("reason", ""))
            for r in client.get_model_repository_index() if r["name"] == name}


def _infer(client, name, version=""):
    x = httpclient.InferInput("X", [1], "INT32")
    x.set_data_from_numpy(np.array([7], np.int32))
    return client.infer(name, [x], model_version=version)


def _error(call):
    with pytest.raises(InferenceServerException) as exc:
        call()
    return exc.value.message()


def _serves_nothing(client, name):
    """Model ready false for the model and each version; requests and metadata answered
    as for a model with no available version (Triton's GetModel)."""
    assert not client.is_model_ready(name)
    assert not client.is_model_ready(name, "1")
    assert "'halffail' has no available versions" in _error(lambda: _infer(client, name))
    assert "'halffail' has no available versions" in _error(
        lambda: client.get_model_metadata(name))


def test_a_start_up_load_with_a_failed_version_serves_none(tmp_path):
    repo = tmp_path / "repo"
    _repo(repo, "halffail", {1: True, 2: False})
    (repo / "halfens" / "1").mkdir(parents=True)
    (repo / "halfens" / "config.pbtxt").write_text(ENSEMBLE)
    srv = Server([repo], "--exit-on-error=false", "--strict-readiness=false")
    try:
        client = httpclient.InferenceServerClient(srv.url)
        rows = _rows(client, "halffail")
        assert rows["1"] == ("UNAVAILABLE", "unloaded")
        assert rows["2"][0] == "UNAVAILABLE" and "version 2 is broken" in rows["2"][1]
        _serves_nothing(client, "halffail")
        # the ensemble's node finds no loaded version: refused, a name-only row
        assert {"name": "halfens"} in client.get_model_repository_index()
        assert not client.is_model_ready("halfens")
        assert (f"ensemble 'halfens' depends on 'halffail' which has no loaded version. Model "
                f"'halffail' loading failed with error: version 2 is at UNAVAILABLE state: "
                f"{rows['2'][1]};".replace("\n", "\\n")) in srv.output()    # logged escaped
        assert "successfully unloaded 'halffail' version 1" in srv.output()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    repo = tmp_path_factory.mktemp("partial") / "repo"
    _repo(repo, "halffail", {1: True, 2: False})
    _repo(repo, "grow", {1: True, 2: False, 3: True})
    srv = Server([repo], "--model-control-mode=explicit")
    yield srv, httpclient.InferenceServerClient(srv.url)
    srv.stop()


def test_the_load_api_releases_the_versions_of_a_load_that_failed(explicit):
    srv, client = explicit
    status, message = _load_error(client, "halffail")
    rows = _rows(client, "halffail")
    assert status == "400" and message == (
        f"load failed for model 'halffail': version 2 is at UNAVAILABLE state: {rows['2'][1]};\n")
    assert rows["1"] == ("UNAVAILABLE", "unloaded") and rows["2"][0] == "UNAVAILABLE"
    _serves_nothing(client, "halffail")


def _config(policy):
    return json.dumps({
        "backend": "python", "max_batch_size": 0, "version_policy": policy,
        "input": [{"name": "X", "data_type": "TYPE_INT32", "dims": [1]}],
        "output": [{"name": "Y", "data_type": "TYPE_INT32", "dims": [1]}]})


def test_a_failed_reload_keeps_the_version_that_served(explicit):
    """Version 1 serves; a reload asking for 1, 2 and 3 keeps 1 (untouched: not in the
    load's set), 2 fails, 3 loads and is released."""
    srv, client = explicit
    client.load_model("grow", config=_config({"specific": {"versions": [1]}}))
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("grow", config=_config({"all": {}}))
    rows = _rows(client, "grow")
    assert exc.value.message() == (
        f"load failed for model 'grow': version 2 is at UNAVAILABLE state: {rows['2'][1]};\n")
    assert rows["1"] == ("READY", "") and rows["3"] == ("UNAVAILABLE", "unloaded")
    assert rows["2"][0] == "UNAVAILABLE" and "version 2 is broken" in rows["2"][1]
    assert client.is_model_ready("grow") and client.is_model_ready("grow", "1")
    assert not client.is_model_ready("grow", "3")
    assert _infer(client, "grow").as_numpy("Y").tolist() == [7]
    assert "'grow' version 3 is not at ready state" in _error(lambda: _infer(client, "grow", "3"))
