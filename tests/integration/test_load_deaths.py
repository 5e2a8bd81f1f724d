"""A worker that dies after its instance loaded but before its version serves.

Triton's load succeeds once every instance's initialize returned (core's
``ModelLifeCycle::CreateModel``), and a Python stub that dies afterwards only shows as
"Stub process ... is not healthy" (python_backend). tritond notices every worker death:
before the load API switches the version in, the version's load fails with the death as
its reason and the load's other new versions are released (the served ones keep serving);
after the switch, the restart policy restarts it. Never a READY version with a dead
instance."""
from __future__ import annotations

import json
import re
import time

import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.test_load_stages import MODEL_PY, _load_error
from tests.integration.test_partial_loads import SLOW_PY, _infer, _rows
from tests.server import Server

# Dies (SIGKILL) a moment after initialize returned, once: while the marker exists.
DYING_PY = MODEL_PY + """
    def initialize(self, args):
        import os, signal, threading, time

        def die():
            time.sleep(%s)
            try:
                os.remove(%r)
            except FileNotFoundError:
                return
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=die, daemon=True).start()
"""
# Slow only for a second instance (an in-place instance update that takes a while).
SLOW_SECOND_PY = MODEL_PY + """
    def initialize(self, args):
        import time
        if not args["model_instance_name"].endswith("_0"):
            time.sleep(2.5)
"""
_IO = {"input": [{"name": "X", "data_type": "TYPE_INT32", "dims": [1]}],
       "output": [{"name": "Y", "data_type": "TYPE_INT32", "dims": [1]}]}


def _config(versions, count=1):
    return json.dumps({"backend": "python", "max_batch_size": 0, **_IO,
                       "version_policy": {"specific": {"versions": versions}},
                       "instance_group": [{"kind": "KIND_CPU", "count": count}]})


def _version(root, name, version, text):
    (root / name / str(version)).mkdir(parents=True)
    (root / name / str(version) / "model.py").write_text(text)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("deaths")
    repo, marks = root / "repo", root / "marks"
    marks.mkdir()
    # version 1 dies 0.3 s after its load; version 2 keeps the load open 1.5 s
    _version(repo, "early", 1, DYING_PY % (0.3, str(marks / "early")))
    _version(repo, "early", 2, SLOW_PY % 1.5)
    # version 1 serves; a reload adds version 2, which dies (0.8 s after its first
    # instance loaded) while version 1's new instance (an in-place update) loads 2.5 s
    _version(repo, "mid", 1, SLOW_SECOND_PY)
    _version(repo, "mid", 2, DYING_PY % (0.8, str(marks / "mid")))
    # alone: its load is over (switched in) when it dies
    _version(repo, "late", 1, DYING_PY % (1.0, str(marks / "late")))
    for name in ("early", "mid", "late"):
        (repo / name / "config.pbtxt").write_text(
            'backend: "python"\nmax_batch_size: 0\ninput [ { name: "X" data_type: TYPE_INT32 '
            'dims: [ 1 ] } ]\noutput [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
            "version_policy { all {} }\n")
    srv = Server([repo], "--model-control-mode=explicit")
    srv.marks = marks
    yield srv, httpclient.InferenceServerClient(srv.url)
    srv.stop()


_DEATH = r"instance '%s_[0-9_]+' \(pid \d+\) killed by signal SIGKILL"


def test_a_death_before_the_switch_fails_that_versions_load(server):
    srv, client = server
    (srv.marks / "early").touch()
    status, message = _load_error(client, "early")
    rows = _rows(client, "early")
    assert status == "400" and message == (
        f"load failed for model 'early': version 1 is at UNAVAILABLE state: {rows['1'][1]};\n")
    assert re.fullmatch(_DEATH % "early", rows["1"][1]) and rows["1"][0] == "UNAVAILABLE"
    assert rows["2"] == ("UNAVAILABLE", "unloaded")        # released with it
    assert not client.is_model_ready("early") and not client.is_model_ready("early", "2")
    assert re.search(r"model 'early' version 1: " + _DEATH % "early", srv.output())
    # the marker is gone: loading again serves both
    client.load_model("early")
    assert _rows(client, "early") == {"1": ("READY", ""), "2": ("READY", "")}
    assert _infer(client, "early", "1").as_numpy("Y").tolist() == [7]


def test_a_death_during_an_instance_update_fails_the_new_version(server):
    """Version 2 is READY (its load ended) but not switched in: the in-place update of
    version 1 still runs. Its death fails the load; version 1 keeps serving."""
    srv, client = server
    client.load_model("mid", config=_config([1]))
    (srv.marks / "mid").touch()
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("mid", config=_config([1, 2], count=2))
    rows = _rows(client, "mid")
    assert rows["2"][0] == "UNAVAILABLE" and re.fullmatch(_DEATH % "mid", rows["2"][1])
    assert exc.value.message() == (
        f"load failed for model 'mid': version 2 is at UNAVAILABLE state: {rows['2'][1]};\n")
    assert rows["1"] == ("READY", "") and client.is_model_ready("mid", "1")
    assert not client.is_model_ready("mid", "2")
    assert _infer(client, "mid", "1").as_numpy("Y").tolist() == [7]


def test_a_death_after_the_switch_is_restarted(server):
    srv, client = server
    (srv.marks / "late").touch()
    client.load_model("late")
    end = time.monotonic() + 10
    while not re.search(r"restarted instance \S+ of 'late' version 1", srv.output()):
        assert time.monotonic() < end, srv.output()
        time.sleep(0.05)
    assert re.search(r"model 'late' version 1: " + _DEATH % "late", srv.output())
    assert client.is_model_ready("late")
    assert _infer(client, "late", "1").as_numpy("Y").tolist() == [7]
