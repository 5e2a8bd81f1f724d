"""A load whose versions partly fail serves none of them (core's ModelLifeCycle::
OnLoadFinal: "If any of the versions fails to load, abort the load and unload all newly
loaded versions"): the failed version keeps its reason, every version the load brought up
ends UNAVAILABLE "unloaded"; versions that served before a reload keep serving. An
ensemble on such a model finds no loaded version (CheckNode)."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
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


SLOW_PY = MODEL_PY + """
    def initialize(self, args):
        import time
        time.sleep(%s)
"""
ONE_INSTANCE_PY = MODEL_PY + """
    def initialize(self, args):
        if args["model_instance_name"].endswith("_1"):
            raise RuntimeError("no second instance")
"""


def _slow_repo(root, name, versions):
    """``name`` with a version directory per {version: (seconds its load takes, ok?)}."""
    for version, (delay, ok) in versions.items():
        (root / name / str(version)).mkdir(parents=True)
        (root / name / str(version) / "model.py").write_text(
            SLOW_PY % delay if ok else TWOFAIL_PY % (delay, version))
    (root / name / "config.pbtxt").write_text(OK_CONFIG + "version_policy { all {} }\n")


def _rows(client, name):
    return {r.get("version"): (r.get("state"), r.get("reason", ""))
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


def _watch(client, name, until):
    """Index rows of ``name`` and whether its version 1 answered a request, seen again and
    again until ``until()``; the rows are read after each request (READY never goes back)."""
    seen = []
    while not until():
        try:
            served = _infer(client, name, "1").as_numpy("Y").tolist() == [7]
        except InferenceServerException:
            served = False
        try:
            seen.append((_rows(client, name), served))
        except InferenceServerException:
            pass
        time.sleep(0.05)
    return seen


def _live(url):
    try:
        return httpclient.InferenceServerClient(url).is_server_live()
    except Exception:  # noqa: BLE001 - not listening yet
        return False


def test_a_start_up_load_that_fails_never_serves_its_loaded_version(tmp_path):
    """Core's OnLoadComplete leaves a version whose own load ended LOADING until the last
    version of its load ends: version 1 (loaded at once) never shows READY nor answers
    while version 2 loads and then fails; then it is released."""
    repo = tmp_path / "repo"
    _slow_repo(repo, "slowfail", {1: (0, True), 2: (3, False)})
    srv = Server([repo], "--exit-on-error=false", "--strict-readiness=false", wait_ready=False)
    try:
        client = httpclient.InferenceServerClient(srv.url)
        while not _live(srv.url):
            assert srv.proc.poll() is None, srv.output()
            time.sleep(0.05)
        seen = _watch(client, "slowfail", client.is_server_ready)
        assert ("LOADING", "") in [rows.get("1") for rows, _ in seen]
        assert [rows for rows, _ in seen if rows.get("1", ("",))[0] == "READY"] == []
        assert not any(served for _, served in seen)
        assert _rows(client, "slowfail")["1"] == ("UNAVAILABLE", "unloaded")
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def explicit(tmp_path_factory):
    repo = tmp_path_factory.mktemp("partial") / "repo"
    _repo(repo, "halffail", {1: True, 2: False})
    _repo(repo, "grow", {1: True, 2: False, 3: True})
    _slow_repo(repo, "slowpair", {1: (0, True), 2: (3, True)})
    _repo(repo, "upd", {1: True, 2: True})
    (repo / "upd" / "1" / "model.py").write_text(ONE_INSTANCE_PY)
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


def test_the_versions_of_a_load_become_ready_together(explicit):
    """Version 1 loads at once, version 2 in 3 s: version 1 stays LOADING in the index
    (model ready false, "not at ready state") until both are READY (core's OnLoadFinal)."""
    srv, client = explicit
    with grpcclient.InferenceServerClient(srv.grpc_url) as grpc:   # gevent's client: one thread
        loader = threading.Thread(target=grpc.load_model, args=("slowpair",))
        loader.start()
        seen = _watch(client, "slowpair", lambda: not loader.is_alive())
        loader.join()
    states = [(rows.get("1", ("",))[0], rows.get("2", ("",))[0]) for rows, _ in seen]
    listed = states[next(i for i, s in enumerate(states) if s[0]):]     # once in the index
    assert ("LOADING", "LOADING") in listed
    assert set(listed) <= {("LOADING", "LOADING"), ("READY", "READY")}
    assert [rows for rows, served in seen if served and rows["2"][0] != "READY"] == []
    assert _rows(client, "slowpair") == {"1": ("READY", ""), "2": ("READY", "")}


def _groups(count, versions):
    return json.dumps({**json.loads(_config({"specific": {"versions": versions}})),
                       "instance_group": [{"kind": "KIND_CPU", "count": count}]})


def test_a_failed_instance_update_fails_the_load_as_triton(explicit):
    """Core's OnLoadComplete reports a served version whose instance groups failed to
    update as "version <v> is at READY state: <reason>;" (UpdateModelConfig keeps the
    reason on the version, still READY); the load failed, so OnLoadFinal releases the
    version it loaded anew (2) and the old one serves as before."""
    srv, client = explicit
    client.load_model("upd", config=_groups(1, [1]))
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("upd", config=_groups(2, [1, 2]))
    rows = _rows(client, "upd")
    assert rows["1"][0] == "READY" and "no second instance" in rows["1"][1]
    assert exc.value.message() == (
        f"load failed for model 'upd': version 1 is at READY state: {rows['1'][1]};\n")
    assert rows["2"] == ("UNAVAILABLE", "unloaded")
    assert client.is_model_ready("upd", "1") and not client.is_model_ready("upd", "2")
    assert _infer(client, "upd").as_numpy("Y").tolist() == [7]
