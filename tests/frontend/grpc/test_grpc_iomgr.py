"""iomgr.prefer_iomgr: grpcio's iomgr endpoints for the frontend, chosen before grpc loads."""
from __future__ import annotations

import os
import subprocess
import sys

from tritond.frontend.grpc import iomgr


def test_chosen_when_nothing_was():
    env: dict = {}
    assert iomgr.prefer_iomgr(env, {})
    assert env == {"GRPC_EXPERIMENTS": iomgr.EXPERIMENTS}


def test_the_users_value_wins():
    env = {"GRPC_EXPERIMENTS": "event_engine_listener"}
    assert not iomgr.prefer_iomgr(env, {})
    assert env == {"GRPC_EXPERIMENTS": "event_engine_listener"}
    empty = {"GRPC_EXPERIMENTS": ""}         # README: keeps grpcio's own defaults
    assert not iomgr.prefer_iomgr(empty, {})
    assert empty == {"GRPC_EXPERIMENTS": ""}


def test_too_late_once_grpc_is_loaded():
    # grpc reads GRPC_EXPERIMENTS when it is imported: setting it after would only
    # claim a choice that was not applied.
    env: dict = {}
    assert not iomgr.prefer_iomgr(env, {"grpc": object()})
    assert env == {}


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)


def test_the_frontend_process_has_not_loaded_grpc_when_it_chooses():
    # frontend/proc.main calls prefer_iomgr first; its module imports must not pull grpc in.
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    out = _python("import sys, tritond.frontend.proc; print('grpc' in sys.modules)", env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_this_grpcio_knows_both_experiments():
    # An unknown name is only logged by core ("Unknown experiment: ...") and ignored.
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    code = ("from tritond.frontend.grpc.iomgr import prefer_iomgr\n"
            "assert prefer_iomgr()\n"
            "from grpc._cython import cygrpc\n"
            "server = cygrpc.Server((), False)\n"
            "print('ok')\n")
    out = _python(code, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert "Unknown experiment" not in out.stderr
    bogus = _python(code.replace("prefer_iomgr()", "not prefer_iomgr()"),
                    dict(env, GRPC_EXPERIMENTS="-no_such_experiment"))
    assert "Unknown experiment" in bogus.stderr       # the check above can fail
