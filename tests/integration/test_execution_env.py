"""Python execution environments (EXECUTION_ENV_PATH) through a real tritond and the real
tritonclient: a packed venv and an unpacked one serve their own packages; a missing,
corrupt, escaping, other-Python or too-old-numpy environment fails the load, saying why."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.integration import execenv_repo as envs
from tests.server import Server

ESCAPED = "tritond_execenv_escaped"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("execenv")
    repo = base / "repo"
    packed = envs.venv(base / "venv")
    tar = envs.model(repo, "tarenv", "$$TRITON_MODEL_DIRECTORY/env.tar.gz", count=2)
    envs.pack(packed, tar / "env.tar.gz")
    envs.model(repo, "shared", str(tar / "env.tar.gz"))       # the same archive, by its path
    envs.model(repo, "direnv", "$$TRITON_MODEL_DIRECTORY/env")
    envs.with_numpy(envs.venv(repo / "direnv" / "env", value=7))
    envs.model(repo, "missing", "$$TRITON_MODEL_DIRECTORY/nope.tar.gz")
    (envs.model(repo, "corrupt", "$$TRITON_MODEL_DIRECTORY/env.tar.gz") / "env.tar.gz") \
        .write_bytes(b"\x1f\x8b not really gzip")
    py39 = envs.model(repo, "py39", "$$TRITON_MODEL_DIRECTORY/env.tar.gz")
    envs.pack(envs.fake_env(base / "py39"), py39 / "env.tar.gz")
    envs.model(repo, "oldnumpy", "$$TRITON_MODEL_DIRECTORY/env")
    envs.fake_env(repo / "oldnumpy" / "env", python=envs.PYTHON, numpy_version="1.20.0")
    for name, member in (("dotdot", f"../../{ESCAPED}"), ("absolute", f"/tmp/{ESCAPED}")):
        d = envs.model(repo, name, "$$TRITON_MODEL_DIRECTORY/env.tar.gz")
        envs.evil_archive(d / "env.tar.gz", member)
    tmpdir = base / "tmp"          # where the server unpacks archives
    tmpdir.mkdir()
    server = Server([str(repo)], "--strict-readiness=false", env={"TMPDIR": str(tmpdir)})
    try:
        yield server, repo, tmpdir
    finally:
        server.stop()


def _index(server) -> dict:
    client = httpclient.InferenceServerClient(server.url)
    return {row["name"]: row for row in client.get_model_repository_index()}


def _row(server, model: str) -> list[int]:
    client = httpclient.InferenceServerClient(server.url)
    inp = httpclient.InferInput("IN0", [1], "FP32")
    inp.set_data_from_numpy(np.zeros(1, np.float32))
    return client.infer(model, [inp]).as_numpy("OUT0").tolist()


def test_packed_environment_serves_its_package(setup):
    server, _, _ = setup
    # envmarker from the archive; numpy the server's (the env has none); PATH/LD_LIBRARY_PATH
    for _ in range(4):                                  # both instances
        assert _row(server, "tarenv") == [envs.MARKER, 0, 1, 1]
    assert _row(server, "shared") == [envs.MARKER, 0, 1, 1]


def test_one_archive_is_unpacked_once_under_tmpdir(setup):
    server, repo, tmpdir = setup
    # tarenv's two instances and "shared" name one archive: one extraction
    archive = os.path.realpath(repo / "tarenv" / "env.tar.gz")
    assert server.output().count(f"Extracting Python execution env {archive}") == 1
    bases = list(tmpdir.glob("tritond_python_env_*"))
    assert len(bases) == 1 and list(bases[0].glob(
        f"*/lib/{envs.PYTHON}/site-packages/envmarker/__init__.py"))


def test_unpacked_directory_and_its_numpy(setup):
    server, _, _ = setup
    # a directory is used in place; its numpy is the one the model (and the worker) import
    assert _row(server, "direnv") == [7, 1, 1, 1]


_WRITE = "Internal: archive_write_header() failed with error code = -25 error message is "


@pytest.mark.parametrize("model, reason", [
    # Triton's texts (Status text first, as every Python load failure)
    ("missing", "Internal: Failed to get the canonical path for {repo}/missing/nope.tar.gz."),
    ("corrupt", "Internal: archive_read_open_filename() failed. "
                "'{repo}/corrupt/env.tar.gz' is not a readable tar archive"),
    ("dotdot", _WRITE + f"Path contains '..' ('../../{ESCAPED}')"),
    ("absolute", _WRITE + f"Path is absolute ('/tmp/{ESCAPED}')"),
    # tritond's own rules
    ("py39", "Internal: the Python execution environment {repo}/py39/env.tar.gz is for "
             "python3.9 (lib/python3.9/site-packages), but tritond's Python worker runs "
             f"{envs.PYTHON}: the environment's Python version must match"),
    ("oldnumpy", "carries numpy 1.20; tritond's worker uses the environment's numpy and "
                 "needs numpy >= 1.24"),
])
def test_bad_environment_fails_the_load(setup, model, reason):
    server, repo, _ = setup
    row = _index(server)[model]
    assert row["state"] == "UNAVAILABLE"
    assert reason.format(repo=os.path.realpath(repo)) in row["reason"]
    assert row["reason"].startswith("Internal: ")
    assert not pathlib.Path(f"/tmp/{ESCAPED}").exists()
    assert not list(repo.parent.rglob(ESCAPED))


def test_unpacked_environments_are_removed_at_shutdown(setup):
    server, _, tmpdir = setup
    assert _index(server)["tarenv"]["state"] == "READY"
    server.stop()
    assert not list(tmpdir.glob("tritond_python_env_*"))


def test_reloads_unpack_again_only_when_the_archive_changed(tmp_path):
    # Triton's qa/L0_backend_python/env: load; touch model.py, load; touch the archive, load:
    # two extractions.
    model = envs.model(tmp_path / "repo", "tarenv", "$$TRITON_MODEL_DIRECTORY/env.tar.gz")
    archive = envs.pack(envs.venv(tmp_path / "venv"), model / "env.tar.gz")
    server = Server([str(tmp_path / "repo")], "--model-control-mode=explicit",
                    env={"TMPDIR": str(tmp_path)})
    try:
        client = httpclient.InferenceServerClient(server.url)
        client.load_model("tarenv")
        for touched in (model / "1" / "model.py", archive):
            st = touched.stat()
            os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            client.load_model("tarenv")
            assert _row(server, "tarenv") == [envs.MARKER, 0, 1, 1]
        assert server.output().count("Extracting Python execution env") == 2
    finally:
        server.stop()
    assert not list(tmp_path.glob("tritond_python_env_*"))
