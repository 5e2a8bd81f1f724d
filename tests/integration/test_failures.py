"""Failure isolation with real processes: dead workers, a crash loop, a dead scheduler or frontend.

Each test starts its own tritond on loopback over a tmp repository holding
the misbehaving Python model of ``crashmodel`` (plus ``simple``, the
bystander that must not notice anything), keeps load bounded (a few threads,
a count and a time limit), and checks that processes and /dev/shm are clean
at the end.
"""
import os
import signal
import threading
import time

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.crashmodel import (EXIT, SEGV, SLOW, alive, mode_input, pid_of,
                                          simple_inputs, write_repo)
from tests.server import Server, segments_of


class SimpleLoad:
    """A thread sending ``simple`` gRPC requests until stopped (at most ``limit`` s); all must pass."""

    def __init__(self, srv: Server, limit: float = 30.0) -> None:
        self.ok, self.errors = 0, []
        self._stop = threading.Event()
        self._end = time.monotonic() + limit
        self._thread = threading.Thread(target=self._run, args=(srv.grpc_url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        # gRPC: its client may be used and closed from one thread (the HTTP one
        # is gevent-based and complains when collected from another thread).
        c = grpcclient.InferenceServerClient(url)
        try:
            while not self._stop.is_set() and time.monotonic() < self._end:
                try:
                    c.infer("simple", simple_inputs(grpcclient), client_timeout=10)
                    self.ok += 1
                except Exception as exc:  # noqa: BLE001 - collected for the assertion
                    self.errors.append(str(exc))
        finally:
            c.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def _infer(c, mode):
    return c.async_infer("crashy", mode_input(httpclient, mode))


def _error(fut) -> str:
    with pytest.raises(InferenceServerException) as info:
        fut.get_result()
    return str(info.value)


def _wait(pred, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 - not yet
            pass
        time.sleep(0.05)
    raise TimeoutError(what)


def _assert_clean(srv: Server, pids) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    assert [p for p in pids if alive(p)] == []
    assert segments_of(srv.proc.pid) == []


def _spawned(srv: Server) -> list[int]:
    """The server's children, less multiprocessing's resource tracker."""
    out = []
    for pid in srv.children():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def test_worker_deaths_fail_only_executing_requests(tmp_path):
    srv = Server([write_repo(tmp_path)])
    load = SimpleLoad(srv)
    c = httpclient.InferenceServerClient(srv.url, concurrency=8, network_timeout=20)
    try:
        pid = int(_infer(c, 0).get_result().as_numpy("OUT")[0])
        for crash, expect in ((EXIT, "exited with code 1"), (SEGV, "killed by signal SIGSEGV"),
                              ("kill", "killed by signal SIGKILL")):
            slow = _infer(c, SLOW)
            time.sleep(0.05)
            if crash == "kill":    # from outside, while `slow` executes
                os.kill(pid, signal.SIGKILL)
                victim = slow
            else:
                victim = _infer(c, crash)
            queued = [_infer(c, 0) for _ in range(4)]   # behind the crash: wait for the restart
            message = _error(victim)
            assert "[503]" in message or "UNAVAILABLE" in message
            for word in ("'crashy'", "'crashy_0_0'", f"pid {pid}", expect):
                assert word in message, message
            if crash != "kill":
                assert int(slow.get_result().as_numpy("OUT")[0]) == pid   # ran before the crash
            new = {int(f.get_result().as_numpy("OUT")[0]) for f in queued}
            assert len(new) == 1 and pid not in new     # served by the restarted instance
            assert not alive(pid)
            assert [s for s in segments_of(srv.proc.pid) if f"-{pid}-" in s] == []
            pid = new.pop()
        assert c.is_model_ready("crashy") and c.is_server_ready()
        load.stop()
        assert load.errors == [] and load.ok > 0          # the other model never noticed
        g = grpcclient.InferenceServerClient(srv.grpc_url)
        with pytest.raises(InferenceServerException) as info:
            g.infer("crashy", mode_input(grpcclient, EXIT), client_timeout=20)
        assert info.value.status() == "StatusCode.UNAVAILABLE"
        assert "exited with code 1" in info.value.message()
        g.close()
    finally:
        load.stop()
        c.close()
        children = srv.children()
        assert srv.stop() == 0
    _assert_clean(srv, children)
    assert "instance 'crashy_0_0'" in srv.output()


def test_queued_requests_move_to_the_other_instance(tmp_path):
    srv = Server([write_repo(tmp_path, count=2, with_simple=False)])
    c = httpclient.InferenceServerClient(srv.url, concurrency=8, network_timeout=20)
    try:
        crash = _infer(c, EXIT)
        time.sleep(0.05)
        rest = [_infer(c, 0) for _ in range(6)]
        assert "exited with code 1" in _error(crash)
        assert all(f.get_result().as_numpy("OUT")[0] > 0 for f in rest)
    finally:
        c.close()
        children = srv.children()
        assert srv.stop() == 0
    _assert_clean(srv, children)


def test_crash_loop_makes_the_model_unavailable_then_reloads(tmp_path):
    repo = write_repo(tmp_path)
    srv = Server([repo], "--model-retry-interval=3")
    c = httpclient.InferenceServerClient(srv.url, concurrency=4, network_timeout=30)
    try:
        (repo / "crashy" / "BROKEN").write_text("restarts fail at import")
        assert "exited with code 1" in _error(_infer(c, EXIT))
        # Every restart now fails: not ready (model and server), reason visible.
        # (The error comes from the scheduler and the new table from the parent:
        # two sockets, so the frontend may see the table a moment later.)
        _wait(lambda: not c.is_model_ready("crashy"), what="crashy not ready")
        assert not c.is_server_ready()
        assert c.is_model_ready("simple")
        row = next(m for m in c.get_model_repository_index() if m["name"] == "crashy")
        assert row["state"] == "UNAVAILABLE" and "restarting" in row["reason"], row
        waiting = _infer(c, 0)     # accepted and queued while restarting ...
        _wait(lambda: "reloading every 3s" in next(
            m for m in c.get_model_repository_index() if m["name"] == "crashy")["reason"],
            what="crash limit")
        message = _error(waiting)  # ... failed once the model gave up, with the reason
        assert "not at ready state" in message and "BROKEN" in message, message
        assert not c.is_model_ready("crashy")
        # As Triton: no version READY is 404 without a version, 503 naming one.
        assert "has no available versions" in _error(_infer(c, 0))
        with pytest.raises(InferenceServerException, match=r"\[503\].*not at ready state"):
            c.infer("crashy", mode_input(httpclient, 0), model_version="1")
        assert c.infer("simple", simple_inputs(httpclient)).as_numpy("OUTPUT0") is not None
        # Requests can crash a worker: the model is never given up for good. Once the
        # cause is gone, the next reload attempt brings it back.
        (repo / "crashy" / "BROKEN").unlink()
        _wait(lambda: c.is_model_ready("crashy"), what="crashy reloaded", timeout=30)
        assert _infer(c, 0).get_result().as_numpy("OUT")[0] > 0
        assert c.is_server_ready()
    finally:
        c.close()
        children = srv.children()
        assert srv.stop() == 0
    _assert_clean(srv, children)


@pytest.mark.parametrize("victim", ["scheduler", "frontend-0"])
def test_core_process_death_stops_the_server(tmp_path, victim):
    srv = Server([write_repo(tmp_path)])
    load = SimpleLoad(srv, limit=20)
    try:
        _wait(lambda: load.ok > 20, what="load")
        children = srv.children()
        pid = pid_of(srv, victim)
        os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        code = srv.proc.wait(15)
        assert code == 1
        assert time.monotonic() - start < 10
        load.stop()
        assert not load._thread.is_alive()      # no client hangs on a dead server
        log = srv.output()
        assert f"{victim} (pid {pid}) killed by signal SIGKILL unexpectedly: stopping" in log
        with pytest.raises(OSError):            # the ports are closed
            import socket
            socket.create_connection(("127.0.0.1", srv.http_port), timeout=1).close()
    finally:
        load.stop()
        srv.stop()
    _assert_clean(srv, children)


GATED_CALLEE = '''
import os, pathlib, time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        here = pathlib.Path(__file__).resolve().parents[1]
        if int(pb_utils.get_input_tensor_by_name(requests[0], "MODE").as_numpy()[0]):
            (here / "started").write_text("")
            for _ in range(3000):            # a minute at most: a test that never opens fails
                if (here / "gate").exists():
                    break
                time.sleep(0.02)
        pid = np.array([os.getpid()], np.int32)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUT", pid)]) for _ in requests]
'''

BLS_CALLER = '''
import os, pathlib

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        (pathlib.Path(__file__).resolve().parents[1] / "pid").write_text(str(os.getpid()))

    def execute(self, requests):
        out = []
        for r in requests:
            resp = pb_utils.InferenceRequest(
                model_name="callee", requested_output_names=["OUT"],
                inputs=[pb_utils.get_input_tensor_by_name(r, "MODE")]).exec()
            out.append(pb_utils.InferenceResponse(
                resp.output_tensors(), error=resp.error() if resp.has_error() else None))
        return out
'''


def _pid_model(root, name, code):
    (root / name / "1").mkdir(parents=True)
    (root / name / "1" / "model.py").write_text(code)
    (root / name / "config.pbtxt").write_text(f'''name: "{name}"
backend: "python"
input [ {{ name: "MODE" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
''')
    return root / name


def test_a_bls_callers_death_leaves_its_callee_serving(tmp_path):
    """A BLS caller killed while its callee executes: the callee's answer has nowhere to
    go, and the callee must drop it and keep serving (it died of a BrokenPipeError
    before, failing whatever else it was running and counting a crash)."""
    callee = _pid_model(tmp_path, "callee", GATED_CALLEE)
    caller = _pid_model(tmp_path, "caller", BLS_CALLER)
    srv = Server([tmp_path])
    c = httpclient.InferenceServerClient(srv.url, concurrency=4, network_timeout=60)
    try:
        callee_pid = int(c.infer("callee", mode_input(httpclient, 0)).as_numpy("OUT")[0])
        assert int(c.infer("caller", mode_input(httpclient, 0)).as_numpy("OUT")[0]) == callee_pid
        gated = c.async_infer("caller", mode_input(httpclient, 1))
        _wait(lambda: (callee / "started").exists(), what="the callee runs the BLS call")
        caller_pid = int((caller / "pid").read_text())
        (caller / "pid").unlink()
        os.kill(caller_pid, signal.SIGKILL)
        assert "killed by signal SIGKILL" in _error(gated)
        _wait(lambda: (caller / "pid").exists(), what="the caller restarted")
        (callee / "gate").write_text("")     # the callee answers the dead caller now
        # The callee's next request is served by the same process: it did not die.
        assert int(c.infer("callee", mode_input(httpclient, 0)).as_numpy("OUT")[0]) == callee_pid
        assert int(c.infer("caller", mode_input(httpclient, 0)).as_numpy("OUT")[0]) == callee_pid
        assert "instance 'callee_0_0'" not in srv.output()
    finally:
        c.close()
        children = srv.children()
        assert srv.stop() == 0
    _assert_clean(srv, children)


HOLD_SPAWNS = '''
import os, sys, time
# Test hook: a process spawned by tritond waits here, before it can say hello, while
# the file HOLD exists (a minute at most), after writing its pid to HOLD + ".held".
if "--multiprocessing-fork" in sys.argv and os.path.exists(HOLD):
    with open(HOLD + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(HOLD + ".tmp", HOLD + ".held")
    for _ in range(3000):
        if not os.path.exists(HOLD):
            break
        time.sleep(0.02)
'''


def _workers_of(srv: Server, model: str) -> list[int]:
    out = []
    for pid in srv.children():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(f"tritond: worker {model}_".encode()):
                    out.append(pid)
        except OSError:
            pass
    return out


def test_an_unload_during_a_restart_leaves_no_worker_behind(tmp_path):
    """A worker died and its restart is on the way when the model is unloaded: the
    new worker must not outlive the unload (its Shutdown went to an address it had not
    bound yet, and it loaded and served nothing for ever: an orphan process)."""
    repo = write_repo(tmp_path / "repo", with_simple=False)
    hold = tmp_path / "hold"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(f"HOLD = {str(hold)!r}\n" + HOLD_SPAWNS)
    path = os.pathsep.join(p for p in (str(tmp_path / "site"), os.environ.get("PYTHONPATH")) if p)
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=crashy",
                 env={"PYTHONPATH": path})
    c = httpclient.InferenceServerClient(srv.url, network_timeout=60)
    try:
        pid = int(_infer(c, 0).get_result().as_numpy("OUT")[0])
        hold.write_text("")
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: (tmp_path / "hold.held").exists(), what="the restart spawned")
        restarted = int((tmp_path / "hold.held").read_text())
        c.unload_model("crashy")
        hold.unlink()                       # the new worker may say hello now
        _wait(lambda: not alive(restarted), timeout=30, what="the restarted worker gone")
        assert _workers_of(srv, "crashy") == []
        c.load_model("crashy")              # and the model loads again, one worker
        assert int(_infer(c, 0).get_result().as_numpy("OUT")[0]) > 0
        assert len(_workers_of(srv, "crashy")) == 1
    finally:
        hold.unlink(missing_ok=True)
        c.close()
        children = srv.children()
        assert srv.stop() == 0
    _assert_clean(srv, children)
