"""Loading is visible (issue 13 item 7), on a real tritond: LOADING rows and model-ready
false while a model loads, progress lines every 5 s, "ready" in the log only when
/v2/health/ready says so, and start-up mistakes as one sentence before anything starts."""
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration.echo_repo import MODEL_PY, echo_model
from tests.server import REPO, Server, free_port

SLOW_PY = MODEL_PY.replace('''    def initialize(self, args):
''', '''    def initialize(self, args):
        import os, time
        with open(os.path.join(args["model_repository"], "delay")) as f:
            time.sleep(float(f.read()))
''')


def slow_model(repo, delay: float):
    """``repo/slow``: an echo model whose initialize sleeps the seconds in its ``delay`` file."""
    d = echo_model(repo, "slow", "TYPE_FP32", "[ 2 ]")
    (d / "1" / "model.py").write_text(SLOW_PY)
    (d / "delay").write_text(str(delay))
    return d


def index(client):
    return {r["name"]: r for r in client.get_model_repository_index()}


def ready_status(srv) -> int:
    try:
        with urllib.request.urlopen(f"http://{srv.url}/v2/health/ready", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for(pred, timeout=60.0, what=""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "simple", repo / "simple")
    slow_model(repo, 6.5)
    (repo / "later").mkdir()           # never loaded: a name-only row, as Triton
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=simple",
                 "--load-model=slow", wait_ready=False)
    srv.repo = repo
    yield srv
    srv.stop()


def test_start_shows_each_model_as_it_loads(slow):
    slow.wait("/v2/models/simple/ready")           # simple served while slow still loads
    c = httpclient.InferenceServerClient(slow.url)
    g = grpcclient.InferenceServerClient(slow.grpc_url)
    try:
        rows = index(c)
        assert rows["slow"] == {"name": "slow", "version": "1", "state": "LOADING"}
        assert rows["simple"]["state"] == "READY" and rows["later"] == {"name": "later"}
        assert {m.name: m.state for m in g.get_model_repository_index().models}["slow"] == "LOADING"
        assert not c.is_model_ready("slow") and not g.is_model_ready("slow")
        assert not c.is_server_ready()
        # The line comes only once the health endpoint answers 200.
        wait_for(lambda: "tritond ready" in slow.output(), 60, "no ready line")
        assert ready_status(slow) == 200
        assert index(c)["slow"]["state"] == "READY"
    finally:
        c.close()
        g.close()
    log = slow.output()
    line = "model 'slow' is still loading after 5s (version 1: waiting for instance slow_0_0 (pid "
    assert line in log
    assert log.index(line) < log.index("successfully loaded 'slow'") < log.index(
        f"tritond ready: HTTP 127.0.0.1:{slow.http_port}, gRPC 127.0.0.1:{slow.grpc_port}")
    assert "still loading" not in log[log.index("successfully loaded 'slow'"):]


def test_a_load_through_the_api_shows_loading(slow):
    slow.wait("/v2/health/ready")
    c = httpclient.InferenceServerClient(slow.url)
    try:
        c.unload_model("slow")
        assert index(c)["slow"] == {"name": "slow", "version": "1", "state": "UNAVAILABLE",
                                    "reason": "unloaded"}
        (slow.repo / "slow" / "delay").write_text("2")
        answers = []
        load = urllib.request.Request(f"http://{slow.url}/v2/repository/models/slow/load",
                                      data=b"", method="POST")
        loader = threading.Thread(target=lambda: answers.append(
            urllib.request.urlopen(load, timeout=60).status))
        loader.start()
        wait_for(lambda: index(c)["slow"].get("state") == "LOADING", 10, "no LOADING row")
        assert not c.is_model_ready("slow")
        loader.join(60)
        assert answers == [200]
        assert c.is_model_ready("slow") and index(c)["slow"]["state"] == "READY"
    finally:
        c.close()


def test_not_ready_is_said_with_the_reason():
    srv = Server([REPO], "--model-control-mode=explicit", "--load-model=simple",
                 "--load-model=nope", wait_ready=False)
    try:
        wait_for(lambda: "tritond is serving" in srv.output(), 60, "no start-up line")
        assert ready_status(srv) != 200
    finally:
        srv.stop()
    log = srv.output()
    assert "tritond ready" not in log
    assert ("NOT ready: models did not load: 'nope' (model 'nope' not found in any model "
            "repository) (--strict-readiness=true") in log


def run_tritond(*args, timeout=30):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tritond", *args, "--http-address=127.0.0.1",
                           "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1"],
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def test_a_wrong_repository_path_is_one_sentence_and_nothing_starts(tmp_path):
    (tmp_path / "afile").write_text("")
    for path, what in ((tmp_path / "missing", "does not exist"),
                       (tmp_path / "afile", "is not a directory")):
        proc, _ = run_tritond("--model-repository", str(path), f"--http-port={free_port()}",
                              f"--grpc-port={free_port()}", f"--metrics-port={free_port()}")
        assert proc.returncode == 1
        # One line: no child logged anything (a frontend says "Started HTTPService").
        assert proc.stderr == f"tritond: error: model repository '{path}' {what}\n"
        assert proc.stdout == ""


@pytest.mark.parametrize("flag", ["--http-port", "--grpc-port"])
def test_a_busy_port_fails_at_once(flag):
    ports = {"--http-port": free_port(), "--grpc-port": free_port(), "--metrics-port": free_port()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports[flag] = busy.getsockname()[1]
        proc, took = run_tritond("--model-repository", str(REPO),
                                 *(f"{f}={p}" for f, p in ports.items()))
    what = "HTTP" if flag == "--http-port" else "gRPC"
    assert proc.returncode == 1
    # tritonserver's error line first (tests/integration/test_ports.py), then ours
    triton, ours = proc.stderr.splitlines(keepends=True)
    assert triton.endswith(f"'127.0.0.1:{ports[flag]}' already in use \"\n")
    assert ours == (f"tritond: error: cannot serve {what} on 127.0.0.1:{ports[flag]} "
                    f"({flag}): the address is already in use\n")
    assert took < 2.0


def test_each_endpoint_logs_tritons_started_line(server):
    """Triton's three start-up lines, which scripts and log watchers wait for (the gRPC one was
    missing: grpc_server.cc logs "Started GRPCInferenceService at <address>")."""
    out = server.output()
    for line in (f"Started HTTPService at 127.0.0.1:{server.http_port}",
                 f"Started GRPCInferenceService at 127.0.0.1:{server.grpc_port}",
                 f"Started Metrics Service at 127.0.0.1:{server.metrics_port}"):
        assert line in out, line
