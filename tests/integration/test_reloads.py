"""What a reload keeps, as Triton's QA checks it (L0_lifecycle test_load_new_model_version,
L0_model_update instance_update_test): a served version reloads only when its files or
its config (other than instance_group and version_policy) changed; an instance_group
change adds and removes instances in place while requests keep being answered."""
import collections
import json
import os
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.integration import seq_repo
from tests.integration.test_sequences import infer as seq_infer
from tests.server import Server

MODEL_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.tag = " ".join((args["model_name"], args["model_version"], args["model_instance_name"]))
        self._log("init")

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy())]) for r in requests]

    def finalize(self):
        self._log("fini")

    def _log(self, what):
        with open({log!r}, "a") as f:
            f.write(what + " " + self.tag + "\\n")
'''

CONFIG = ('name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
          'input [{{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }}]\n'
          'output [{{ name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }}]\n')


def _model(repo, name, versions, log, extra):
    d = repo / name
    for v in versions:
        (d / str(v)).mkdir(parents=True)
        (d / str(v) / "model.py").write_text(MODEL_PY.format(log=str(log)))
    (d / "config.pbtxt").write_text(CONFIG.format(name=name) + extra)
    return d


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("reloads")
    repo = root / "models"
    log = root / "events.txt"
    log.write_text("")
    _model(repo, "vers", (1, 2, 3), log, "version_policy: { specific: { versions: [1, 2] } }\n")
    _model(repo, "inst", (1,), log, "instance_group [{ count: 3 kind: KIND_CPU }]\n")
    _model(repo, "stat", (1, 2), log, "version_policy: { specific: { versions: [1] } }\n")
    over = _model(repo, "over", (1, 2, 3), log, "")
    for v in (1, 3):                    # only version 2 can load (L0_lifecycle's set-up)
        (over / str(v) / "model.py").unlink()
    seq_repo.write(repo, count=2)
    s = Server([repo], "--model-control-mode=explicit", "--load-model=vers",
               "--load-model=inst", "--load-model=seq_direct")
    s.repo, s.log_file = repo, log
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(srv):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    yield c
    c.close()


def _events(srv, model="inst"):
    """Counter of initialize / finalize calls of ``model``'s instances."""
    lines = [line.split() for line in srv.log_file.read_text().splitlines()]
    return collections.Counter(event for event, name, _, _ in lines if name == model)


def _version_events(srv, model="vers"):
    lines = [line.split() for line in srv.log_file.read_text().splitlines()]
    return collections.Counter((event, v) for event, name, v, _ in lines if name == model)


def _later():
    """Let the file system clock move on (its mtimes are coarse, a few ms): what is written
    next is newer than what a load saw (the QA tests sleep 0.1 s for this)."""
    time.sleep(0.03)


def _touch(path):
    _later()
    os.utime(path)


def _set_policy(srv, versions):
    cfg = srv.repo / "vers" / "config.pbtxt"
    _later()
    text = cfg.read_text().split("version_policy")[0]
    cfg.write_text(text + f"version_policy: {{ specific: {{ versions: [{versions}] }} }}\n")


def _inits(srv):
    got = _version_events(srv)
    return [got[("init", str(v))] for v in (1, 2, 3, 4)]


def test_a_reload_loads_only_new_and_modified_versions(srv, client):
    ready = lambda: [client.is_model_ready("vers", str(v)) for v in (1, 2, 3, 4)]  # noqa: E731
    assert ready() == [True, True, False, False] and _inits(srv) == [1, 1, 0, 0]
    d = srv.repo / "vers"
    _touch(d / "2" / "model.py")                          # version 2 modified
    (d / "4").mkdir()
    (d / "4" / "model.py").write_text((d / "3" / "model.py").read_text())
    _set_policy(srv, "1, 2, 3, 4")
    client.load_model("vers")
    assert ready() == [True] * 4 and _inits(srv) == [1, 2, 1, 1]
    _later()
    (d / "dummy_dependency.py").write_text("")            # beside the versions: all reload
    client.load_model("vers")
    assert ready() == [True] * 4 and _inits(srv) == [2, 3, 2, 2]
    _set_policy(srv, "4")                                 # a policy change reloads nothing
    client.load_model("vers")
    assert ready() == [False, False, False, True] and _inits(srv) == [2, 3, 2, 2]
    _set_policy(srv, "1, 4")
    client.load_model("vers")
    assert ready() == [True, False, False, True] and _inits(srv) == [3, 3, 2, 2]
    client.load_model("vers")                             # nothing changed: nothing loads
    assert ready() == [True, False, False, True] and _inits(srv) == [3, 3, 2, 2]


def _set_groups(srv, groups):
    cfg = srv.repo / "inst" / "config.pbtxt"
    _later()
    cfg.write_text(cfg.read_text().split("instance_group")[0] + f"instance_group [ {groups} ]\n")


def _wait_for(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.05)


def test_instance_group_changes_update_the_instances_in_place(srv, client):
    answered, errors, stop = [0], [], threading.Event()

    def infer():
        c = grpcclient.InferenceServerClient(srv.grpc_url)
        x = np.arange(4, dtype=np.float32)
        while not stop.is_set():
            i = grpcclient.InferInput("IN", [4], "FP32")
            i.set_data_from_numpy(x)
            try:
                assert (c.infer("inst", [i]).as_numpy("OUT") == x).all()
                answered[0] += 1
            except Exception as exc:  # noqa: BLE001 - collected: none may fail
                errors.append(exc)
        c.close()

    threads = [threading.Thread(target=infer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        assert _events(srv) == {"init": 3}
        # (groups, initialize count, finalize count) after each load, as Triton counts them
        for groups, inits, finis in [
                ("{ count: 4 kind: KIND_CPU }", 4, 0),          # add one
                ("{ count: 3 kind: KIND_CPU }", 4, 1),          # remove one
                ("{ count: 4 kind: KIND_CPU }", 5, 1),          # add one
                ("{ count: 0 kind: KIND_CPU }", 5, 4),          # 0 is 1: remove three
                ('{ name: "x" count: 1 kind: KIND_CPU }', 5, 4),   # a new name: no change
                ('{ name: "a" count: 1 kind: KIND_CPU }, { name: "b" count: 2 kind: KIND_CPU }',
                 7, 4)]:
            _set_groups(srv, groups)
            client.load_model("inst")
            assert _events(srv)["init"] == inits
            _wait_for(lambda: _events(srv)["fini"] == finis)   # a removed one drains first
            got = client.get_model_config("inst", as_json=True)["config"]["instance_group"]
            assert sum(g["count"] for g in got) == inits - finis
        # the load API's config override is compared the same way (test_load_api_with_config)
        cfg = client.get_model_config("inst", as_json=True)["config"]
        cfg["instance_group"] = [{"count": 2, "kind": "KIND_CPU"}]
        client.load_model("inst", config=json.dumps(cfg))
        _wait_for(lambda: _events(srv)["fini"] == 5)
        assert _events(srv)["init"] == 7
        _wait_for(lambda: answered[0] > 0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    stats = client.get_inference_statistics("inst", as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["success"]["count"]) == answered[0]
    client.unload_model("inst")
    _wait_for(lambda: _events(srv)["fini"] == 7)
    assert _events(srv)["init"] == 7


def test_a_load_after_a_config_override_keeps_the_override(srv, client):
    """L0_lifecycle test_config_override: nothing changed on disk since the override,
    so a load without one leaves the model as the override made it."""
    ready = lambda: [client.is_model_ready("over", str(v)) for v in (1, 2, 3)]  # noqa: E731
    with pytest.raises(grpcclient.InferenceServerException) as exc:
        client.load_model("over")                      # latest = 3, which has no model.py
    assert "load failed for model 'over'" in exc.value.message()
    override = {"backend": "python", "version_policy": {"specific": {"versions": [2]}},
                "input": [{"name": "IN", "data_type": "TYPE_FP32", "dims": [-1]}],
                "output": [{"name": "OUT", "data_type": "TYPE_FP32", "dims": [-1]}]}
    client.load_model("over", config=json.dumps(override))
    assert ready() == [False, True, False] and _version_events(srv, "over")[("init", "2")] == 1
    client.load_model("over")
    assert ready() == [False, True, False] and _version_events(srv, "over")[("init", "2")] == 1
    _touch(srv.repo / "over" / "config.pbtxt")             # now the disk config counts
    with pytest.raises(grpcclient.InferenceServerException):
        client.load_model("over")
    assert ready() == [False, True, False]                 # a failed reload keeps it
    client.unload_model("over")


def test_sequences_in_flight_go_on_over_a_load_that_keeps_the_model(srv, client):
    """A load that leaves a sequence model's instances as they are (nothing changed, or
    only its config file's time) keeps its sequences in flight, as Triton."""
    import tritonclient.http as httpclient

    http = httpclient.InferenceServerClient(srv.url)
    try:
        assert seq_infer(http, "seq_direct", 5, 71, start=True) == 5
        client.load_model("seq_direct")                       # nothing changed
        assert seq_infer(http, "seq_direct", 2, 71) == 7
        _touch(srv.repo / "seq_direct" / "config.pbtxt")      # same config, newer file
        client.load_model("seq_direct")
        assert seq_infer(http, "seq_direct", 1, 71, end=True) == 8 + 71
    finally:
        http.close()


def _counts(srv, client, model="stat"):
    """{version: (stats API inference_count, /metrics nv_inference_count)}."""
    import urllib.request
    api = {s["version"]: int(s.get("inference_count", 0)) for s in
           client.get_inference_statistics(model, as_json=True)["model_stats"]}
    text = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics").read().decode()
    prefix = f'nv_inference_count{{model="{model}",version="'
    metric = {line[len(prefix):].split('"')[0]: int(float(line.split()[-1]))
              for line in text.splitlines() if line.startswith(prefix)}
    return {v: (api[v], metric.get(v)) for v in api}


def _infer_stat(client, version, n):
    x = np.zeros(2, np.float32)
    for _ in range(n):
        i = grpcclient.InferInput("IN", [2], "FP32")
        i.set_data_from_numpy(x)
        client.infer("stat", [i], model_version=version)


def test_a_version_loaded_anew_restarts_its_statistics_not_its_metrics(srv, client):
    """Triton (2.51 and core's ModelLifeCycle::AsyncLoad at HEAD; an oracle run) re-creates
    a version on a reload when its files or its config (other than instance_group and
    version_policy) changed: its /v2/models/<m>/stats count from zero, while the
    nv_inference_* counters of /metrics carry on. A version kept by the reload (an
    instance_group or version_policy change, another version's files) keeps both."""
    d = srv.repo / "stat"
    client.load_model("stat")
    _infer_stat(client, "1", 2)
    assert _counts(srv, client) == {"1": (2, 2)}
    cfg = (d / "config.pbtxt").read_text()
    _later()
    (d / "config.pbtxt").write_text(cfg + "instance_group [{ count: 2 kind: KIND_CPU }]\n")
    client.load_model("stat")                       # an update in place: both kept
    assert _counts(srv, client) == {"1": (2, 2)}
    _infer_stat(client, "1", 1)
    _later()
    (d / "config.pbtxt").write_text(cfg.replace("[1]", "[1, 2]") +
                                    "instance_group [{ count: 2 kind: KIND_CPU }]\n")
    client.load_model("stat")                       # version 2 added, version 1 kept
    _infer_stat(client, "2", 1)
    assert _counts(srv, client) == {"1": (3, 3), "2": (1, 1)}
    _touch(d / "2" / "model.py")                    # version 2 loaded anew, 1 kept
    client.load_model("stat")
    assert _counts(srv, client) == {"1": (3, 3), "2": (0, 1)}
    _infer_stat(client, "2", 2)
    _later()
    (d / "config.pbtxt").write_text(cfg.replace("[1]", "[1, 2]") +
                                    'parameters { key: "k" value { string_value: "v" } }\n')
    client.load_model("stat")                       # a config change: both loaded anew
    assert _counts(srv, client) == {"1": (0, 3), "2": (0, 3)}
    _infer_stat(client, "1", 1)
    assert _counts(srv, client) == {"1": (1, 4), "2": (0, 3)}
    stats = client.get_inference_statistics("stat", "1", as_json=True)["model_stats"][0]
    assert int(stats["execution_count"]) == 1 and len(stats["batch_stats"]) == 1
