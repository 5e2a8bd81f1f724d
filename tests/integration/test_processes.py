"""Processes you can tell apart (issue 13 item 8), on a real tritond: role titles in ps,
``python -m tritond``, and a signal to the whole process group shuts down as one to the
parent does (exit 0, no restart, no death reported)."""
import os
import signal
import time

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.integration.test_http_infer import simple_inputs
from tests.server import REPO, Server, segments_of


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0].decode()


def cmdline_all(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def simple_works(srv):
    c = httpclient.InferenceServerClient(srv.url)
    try:
        a = np.ones((1, 16), np.int32)
        assert c.infer("simple", simple_inputs(a, a)).as_numpy("OUTPUT0").sum() == 32
    finally:
        c.close()


def test_every_child_shows_its_role(server):
    titles = sorted(cmdline(pid) for pid in server.children())
    assert "tritond: scheduler" in titles and "tritond: frontend 0" in titles
    assert "tritond: worker simple_0_0 (version 1)" in titles
    # Besides ours, only Python's own multiprocessing resource tracker (it names itself).
    others = [t for t in titles if not t.startswith("tritond: ")]
    assert len(others) <= 1 and all("resource_tracker" in cmdline_all(p) for p in
                                    server.children() if cmdline(p) in others), titles
    # The parent keeps its command line (the flags it runs with); top and pgrep -x see
    # "tritond" even under `python -m`.
    assert "--model-repository" in cmdline_all(server.proc.pid)
    with open(f"/proc/{server.proc.pid}/comm") as f:
        assert f.read().strip() == "tritond"


def signal_masks(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v, 16) for k, v in (line.split(":\t") for line in f)
                if k in ("SigBlk", "SigIgn", "SigCgt")}


def test_children_catch_group_signals_with_a_handler(server):
    """Caught (a handler: reset by exec, so a model's subprocesses still die of SIGTERM),
    neither ignored nor left blocked from the spawn."""
    ours = [pid for pid in server.children() if cmdline(pid).startswith("tritond: ")]
    assert len(ours) >= 3
    for pid in ours:            # (Python's resource tracker ignores them: SIG_IGN)
        masks = signal_masks(pid)
        for sig in (signal.SIGTERM, signal.SIGINT):
            bit = 1 << (sig - 1)
            assert masks["SigCgt"] & bit and not masks["SigIgn"] & bit, (cmdline(pid), sig)
            assert not masks["SigBlk"] & bit, (cmdline(pid), sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_process_group_is_a_clean_shutdown(sig):
    srv = Server([REPO], module="tritond")            # `python -m tritond`
    try:
        simple_works(srv)
        children = srv.children()
        os.killpg(srv.proc.pid, sig)                  # as timeout, systemd, a terminal's Ctrl-C
        code = srv.proc.wait(60)
    finally:
        srv.stop()
    log = srv.output()
    assert code == 0, log
    assert log.count(f"received {signal.Signals(sig).name}") == 1, log
    for bad in ("unexpectedly", "killed by signal", "restarting", "forcing exit", "did not stop"):
        assert bad not in log, log
    assert "tritond stopped (exit code 0)" in log
    end = time.monotonic() + 5
    while time.monotonic() < end and any(os.path.exists(f"/proc/{p}") for p in children):
        time.sleep(0.05)
    assert [p for p in children if os.path.exists(f"/proc/{p}")] == []
    assert segments_of(srv.proc.pid) == []
