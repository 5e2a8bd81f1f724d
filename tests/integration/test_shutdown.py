"""Graceful shutdown under load: SIGTERM drains, a second signal forces, the timeout bounds.

Clients are threads with a request count and a time limit; the model sleeps
0.3 s per request on two instances, so at the signal some requests execute
and some wait in the scheduler's queue: both kinds must finish.
"""
import re
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.crashmodel import SLOW, VERY_SLOW, alive, mode_input, write_repo
from tests.server import Server, segments_of, server_id_of


class Client(threading.Thread):
    """Sends SLOW requests in a loop; records (start, end, outcome) of each."""

    def __init__(self, srv: Server, grpc: bool, stop: threading.Event, limit: float = 20) -> None:
        super().__init__(daemon=True)
        self.srv, self.grpc, self.stop_event, self.end = srv, grpc, stop, time.monotonic() + limit
        self.results: list[tuple[float, float, str]] = []

    def run(self) -> None:
        mod = grpcclient if self.grpc else httpclient
        url = self.srv.grpc_url if self.grpc else self.srv.url
        for _ in range(200):
            if self.stop_event.is_set() or time.monotonic() > self.end:
                return
            c = mod.InferenceServerClient(url) if self.grpc else \
                mod.InferenceServerClient(url, network_timeout=30)
            start = time.monotonic()
            try:
                c.infer("crashy", mode_input(mod, SLOW), **({"client_timeout": 30} if self.grpc else {}))
                outcome = "ok"
            except InferenceServerException as exc:
                outcome = f"error: {exc}"
            except Exception as exc:  # noqa: BLE001 - connection refused/reset after exit
                outcome = f"connection: {exc!r}"
            finally:
                c.close()
            self.results.append((start, time.monotonic(), outcome))
            if outcome != "ok":
                return


def _ready(srv: Server) -> bool:
    try:
        with urllib.request.urlopen(f"http://{srv.url}/v2/health/ready", timeout=1) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def _assert_clean(srv: Server, children) -> None:
    end = time.monotonic() + 5
    while time.monotonic() < end and any(alive(p) for p in children):
        time.sleep(0.05)
    assert [p for p in children if alive(p)] == []
    assert segments_of(srv.proc.pid) == []


def test_sigterm_under_load_loses_no_accepted_request(tmp_path):
    srv = Server([write_repo(tmp_path, count=2, with_simple=False)], "--exit-timeout-secs=20")
    stop = threading.Event()
    clients = [Client(srv, grpc=i % 3 == 2, stop=stop) for i in range(6)]
    try:
        for c in clients:
            c.start()
        time.sleep(1.2)                       # steady state: 2 executing, ~4 queued
        children = srv.children()
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        assert srv.proc.poll() is None and not _ready(srv)   # draining, and says so
        code = srv.proc.wait(30)
        for c in clients:
            c.join(30)
    finally:
        stop.set()
        srv.stop()
    assert code == 0
    before = [r for c in clients for r in c.results if r[0] < signalled]
    bad = [r for r in before if r[2] != "ok" and "shutting down" not in r[2]]
    assert bad == [], bad                      # accepted before the signal: answered
    drained = [r for r in before if r[2] == "ok" and r[1] > signalled]
    assert len(drained) >= 3, before           # executing and queued ones finished after it
    log = srv.output()
    assert log.index("received SIGTERM") < log.index("tritond stopped (exit code 0)")
    _assert_clean(srv, children)


def test_exit_timeout_bounds_the_drain(tmp_path):
    srv = Server([write_repo(tmp_path, with_simple=False)], "--exit-timeout-secs=1")
    c = httpclient.InferenceServerClient(srv.url, network_timeout=30)
    try:
        fut = c.async_infer("crashy", mode_input(httpclient, VERY_SLOW))   # runs 2 s
        time.sleep(0.3)
        children = srv.children()
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        with pytest.raises(InferenceServerException, match="exit-timeout-secs"):
            fut.get_result()
        assert time.monotonic() - start < 2.0
        assert srv.proc.wait(20) == 0
    finally:
        c.close()
        srv.stop()
    _assert_clean(srv, children)


def test_second_signal_forces_exit(tmp_path):
    srv = Server([write_repo(tmp_path, with_simple=False)], "--exit-timeout-secs=60")
    c = httpclient.InferenceServerClient(srv.url, network_timeout=30)
    try:
        fut = c.async_infer("crashy", mode_input(httpclient, VERY_SLOW))
        time.sleep(0.3)
        children = srv.children()
        srv.proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(10) == 1
        assert time.monotonic() - start < 3
        with pytest.raises(Exception):
            fut.get_result()
    finally:
        c.close()
        srv.stop()
    assert "forcing exit" in srv.output()
    _assert_clean(srv, children)


SLOW_LOAD = '''
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        open(args["model_repository"] + "/loading", "w").close()
        time.sleep(300)      # a load the stop must not wait for

    def execute(self, requests):
        return []
'''


def test_a_stop_during_a_load_does_not_wait_for_the_load(tmp_path):
    model = tmp_path / "slow_load"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").write_text(SLOW_LOAD)
    (model / "config.pbtxt").write_text(
        'backend: "python"\ninput [{ name: "IN" data_type: TYPE_FP32 dims: [1] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [1] }]\n')
    srv = Server([tmp_path], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        end = time.monotonic() + 60
        while not (model / "loading").exists() and time.monotonic() < end:
            time.sleep(0.05)
        children = srv.children()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(60)
    finally:
        srv.stop()
    log = srv.output()
    assert re.search(r"w\d+ is still loading instance slow_load_0: stopping it without waiting",
                     log), log
    assert "did not stop within" not in log, log
    assert code == 0
    _assert_clean(srv, children)



def test_a_stop_before_the_frontends_are_set_up_does_not_wait_for_their_drain(tmp_path):
    """SIGTERM while the frontend still starts (no Setup sent yet): it has nothing to drain
    and would never answer the Drain; the stop must not wait --exit-timeout-secs for it."""
    srv = Server([tmp_path], "--exit-timeout-secs=30", wait_ready=False)
    try:
        end = time.monotonic() + 30
        # the scheduler and the frontend spawned: their imports take longer than this poll
        while len(srv.children()) < 2 and time.monotonic() < end:
            time.sleep(0.005)
        children = srv.children()
        server_id_of(srv.proc.pid)          # its channel is bound before any child starts
        srv.proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        code = srv.proc.wait(60)
        took = time.monotonic() - start
    finally:
        srv.stop()
    log = srv.output()
    assert "did not report drained" not in log, log
    assert took < 10, log
    assert code == 0, log
    _assert_clean(srv, children)
