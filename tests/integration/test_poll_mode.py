"""--model-control-mode=poll on a real tritond: repository changes load, unload, reload."""
import shutil
import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.test_http_infer import simple_inputs
from tests.server import REPO, Server

POLLING = "explicit model load / unload is not allowed if polling is enabled"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "simple", repo / "simple")
    srv = Server([repo], "--model-control-mode=poll", "--repository-poll-secs=1")
    client = httpclient.InferenceServerClient(srv.url)
    yield srv, client, repo
    client.close()
    srv.stop()


def wait(pred, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def names(client) -> dict:
    return {r["name"]: r for r in client.get_model_repository_index()}


def simple_sum(client) -> int:
    a = np.ones((1, 16), np.int32)
    return int(client.infer("simple", simple_inputs(a, a)).as_numpy("OUTPUT0").sum())


def test_the_load_api_is_refused(env):
    _, client, _ = env
    for call in (client.load_model, client.unload_model):
        with pytest.raises(InferenceServerException) as exc:
            call("simple")
        assert exc.value.status() == "503" and exc.value.message() == POLLING


def test_a_new_model_directory_loads(env):
    _, client, repo = env
    assert "identity_fp32" not in names(client)
    shutil.copytree(REPO / "identity_fp32", repo / "identity_fp32")
    wait(lambda: client.is_model_ready("identity_fp32"), what="identity_fp32 loaded")


def test_a_changed_model_reloads_and_a_broken_change_keeps_it_serving(env):
    srv, client, repo = env
    config = repo / "simple" / "config.pbtxt"
    text = config.read_text()
    config.write_text(text.replace("max_batch_size: 8", "max_batch_size: 4"))
    wait(lambda: client.get_model_config("simple")["max_batch_size"] == 4, what="reloaded")
    assert simple_sum(client) == 32
    config.write_text(text.replace("max_batch_size: 8", "max_batch_size: 4 bogus_field: 1"))
    wait(lambda: "bogus_field" in srv.output(), what="the failed reload logged")
    assert client.is_model_ready("simple") and simple_sum(client) == 32
    assert client.get_model_config("simple")["max_batch_size"] == 4


def test_a_removed_model_unloads_and_leaves_the_index(env):
    _, client, repo = env
    shutil.rmtree(repo / "identity_fp32")
    wait(lambda: "identity_fp32" not in names(client), what="identity_fp32 gone")
    assert not client.is_model_ready("identity_fp32")
    assert client.is_server_ready()


def test_a_version_policy_change_drains_the_dropped_version(tmp_path):
    """Poll mode: config.pbtxt now serves version 2 only; what version 1 accepted finishes."""
    from tests.integration.test_drain import SLOW, start_requests
    (tmp_path / "slow" / "1").mkdir(parents=True)
    (tmp_path / "slow" / "2").mkdir()
    for v in ("1", "2"):
        (tmp_path / "slow" / v / "model.py").write_text(SLOW)
    config = ('name: "slow"\nbackend: "python"\n'
              'version_policy: {{ specific: {{ versions: [ {v} ] }} }}\n'
              'input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
              'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
              'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    cfg = tmp_path / "slow" / "config.pbtxt"
    cfg.write_text(config.replace("{v}", "1").replace("{{", "{").replace("}}", "}"))
    srv = Server([tmp_path], "--model-control-mode=poll", "--repository-poll-secs=1",
                 "--exit-timeout-secs=60")
    try:
        client = httpclient.InferenceServerClient(srv.url)
        assert client.is_model_ready("slow", "1") and not client.is_model_ready("slow", "2")
        threads, results = start_requests(srv, 4)                # ~3 s of work on version 1
        cfg.write_text(config.replace("{v}", "2").replace("{{", "{").replace("}}", "}"))
        wait(lambda: client.is_model_ready("slow", "2"), what="version 2 loaded")
        for t in threads:
            t.join(30)
        assert results == [[float(i), float(i)] for i in range(4)]   # none lost or failed
        wait(lambda: {r["version"]: r["state"] for r in client.get_model_repository_index()
                      if r["name"] == "slow"}.get("1") == "UNAVAILABLE", what="v1 gone")
        client.close()
    finally:
        srv.stop()


def test_a_removed_or_added_version_leaves_the_other_versions_serving(env, tmp_path):
    """L0_lifecycle test_dynamic_version_load_unload: only the version whose directory
    went or came loads or unloads; the others keep their workers (not re-initialized)."""
    import collections

    from tests.integration.test_reloads import _model
    srv, client, repo = env
    log = tmp_path / "events.txt"
    staged = _model(tmp_path, "multi", (1, 2, 3), log, "version_policy: { all { } }\n")
    d = shutil.move(staged, repo / "multi")        # whole, never half-written to a poll
    ready = lambda: [client.is_model_ready("multi", str(v)) for v in (1, 2, 3, 7)]  # noqa: E731
    inits = lambda: collections.Counter(  # noqa: E731
        line.split()[2] for line in log.read_text().splitlines() if line.startswith("init"))
    wait(lambda: ready() == [True, True, True, False], what="multi loaded")
    assert inits() == {"1": 1, "2": 1, "3": 1}
    shutil.move(d / "1", tmp_path / "gone")      # atomic: a poll never sees it half gone
    wait(lambda: ready() == [False, True, True, False], what="version 1 unloaded")
    shutil.copytree(d / "2", tmp_path / "7")
    shutil.move(tmp_path / "7", d / "7")
    wait(lambda: ready() == [False, True, True, True], what="version 7 loaded")
    assert inits() == {"1": 1, "2": 1, "3": 1, "7": 1}
    rows = {r["version"]: r for r in client.get_model_repository_index() if r["name"] == "multi"}
    assert rows["1"]["state"] == "UNAVAILABLE" and rows["1"]["reason"] == "unloaded"
    shutil.rmtree(d)
    wait(lambda: "multi" not in names(client), what="multi gone")
