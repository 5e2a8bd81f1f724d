"""Older tritonclient releases work unchanged against tritond.

Each release is pip-installed once (no deps: it runs on this venv's grpcio,
protobuf and numpy) into a cache directory keyed by version, reused while it
exists; ``older_client_checks.py`` then runs in a subprocess with that release
first on ``PYTHONPATH`` against one shared server: HTTP and gRPC (sync and
aio) metadata, config, infer with JSON and binary data, BYTES, system shared
memory, statistics, the repository API, a sequence, a decoupled stream and an
error's message. Releases before 2.60 import ``pkg_resources``, which newer
setuptools dropped, so an older setuptools goes into the same directory.
2.25 is the oldest release tried: 2.20's generated protobuf code needs
protobuf <= 3.20, which cannot sit next to the venv's protobuf 6.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.integration.decoupled_repo import decoupled_repo
from tests.integration.seq_repo import _simple_sequence
from tests.server import REPO, Server

VERSIONS = ["2.25.0", "2.30.0", "2.41.0", "2.51.0", "2.60.0"]
SCRIPT = pathlib.Path(__file__).with_name("older_client_checks.py")
CHECKS = {f"http_{c}" for c in ("metadata", "infer_binary", "infer_json", "compressed", "bytes_binary",
                                "bytes_json", "system_shm", "statistics", "repository",
                                "sequence", "bad_input")} | \
         {f"grpc_{c}" for c in ("metadata", "infer", "compressed", "bytes", "system_shm", "statistics",
                                "repository", "sequence", "bad_input", "decoupled_stream")} | \
         {"aio"}


def cache_root() -> pathlib.Path:
    """Under the venv when it is writable (kept between runs), else the temp dir."""
    root = pathlib.Path(sys.prefix) / "older-tritonclient"
    try:
        root.mkdir(exist_ok=True)
        return root
    except OSError:
        root = pathlib.Path(tempfile.gettempdir()) / f"older-tritonclient-{os.getuid()}"
        root.mkdir(exist_ok=True)
        return root


def install(version: str) -> pathlib.Path:
    target = cache_root() / version
    if (target / "tritonclient" / "grpc").is_dir():
        return target
    partial = target.with_name(f"{version}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    packages = [f"tritonclient[all]=={version}"]
    if tuple(map(int, version.split(".")[:2])) < (2, 60):
        packages.append("setuptools<81")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--disable-pip-version-check", "--target", str(partial), *packages],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"pip install {packages} failed:\n{done.stdout}{done.stderr}"
    try:
        partial.rename(target)           # whole or absent: a half install is never reused
    except OSError:                      # another run got there first
        shutil.rmtree(partial, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = decoupled_repo(tmp_path_factory.mktemp("older") / "repo", names=["repeat_int32"])
    _simple_sequence(repo)
    srv = Server([REPO, repo], "--model-control-mode=explicit", "--load-model=simple",
                 "--load-model=simple_string", "--load-model=repeat_int32",
                 "--load-model=simple_sequence", "--allow-client-shm=true")
    yield srv
    srv.stop()


def run_checks(server, path: str | None) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path, str(pathlib.Path(__file__).parents[2])])
    done = subprocess.run([sys.executable, str(SCRIPT), server.url, server.grpc_url],
                          capture_output=True, text=True, env=env, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"the checks did not run:\n{done.stdout}{done.stderr}"
    return {"client": lines[0]["client"],
            "checks": {ln["check"]: ln for ln in lines if "check" in ln},
            "errors": [ln["error_message"] for ln in lines if "error_message" in ln]}


@pytest.fixture(scope="module")
def newest(server):
    """The venv's own tritonclient through the same script: what every release must match."""
    return run_checks(server, None)


@pytest.mark.parametrize("version", VERSIONS)
def test_older_client(server, newest, version):
    out = run_checks(server, str(install(version)))
    assert out["client"] == str(install(version))          # that release, not the venv's
    failed = {name: c["error"] + "\n" + c["trace"]
              for name, c in out["checks"].items() if not c["ok"]}
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    assert set(out["checks"]) == CHECKS
    assert out["errors"] == newest["errors"]      # the server's message, whatever the client


def test_newest_client_passes_the_same_checks(newest):
    assert set(newest["checks"]) == CHECKS
    assert all(c["ok"] for c in newest["checks"].values()), newest["checks"]
