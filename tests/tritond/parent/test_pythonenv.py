"""Execution environments in the parent: where EXECUTION_ENV_PATH points, unpacking once
per archive and modification time, refusing entries that would land outside, checks."""
from __future__ import annotations

import io
import os
import pathlib
import sys
import tarfile

import pytest

from tests.integration import execenv_repo as envs
from tritond.errors import TritonError
from tritond.parent import pythonenv
from tritond.repository import modelconfig


def _cfg(backend: str, value: str):
    return modelconfig.parse_pbtxt(
        f'name: "m" backend: "{backend}" parameters {{ key: "EXECUTION_ENV_PATH" '
        f'value {{ string_value: "{value}" }} }}', "m")


def test_the_parameter_is_the_python_backend_s_and_the_model_directory_is_substituted():
    assert pythonenv.requested(_cfg("python", "$$TRITON_MODEL_DIRECTORY/e.tar.gz")) == \
        "$$TRITON_MODEL_DIRECTORY/e.tar.gz"
    assert pythonenv.requested(_cfg("onnxruntime", "/x.tar.gz")) == ""   # ignored, as Triton
    assert pythonenv.resolve("$$TRITON_MODEL_DIRECTORY/e.tar.gz", "/models/m") == \
        "/models/m/e.tar.gz"
    assert pythonenv.resolve("/abs/e", "/models/m") == "/abs/e"


def _archive(tmp_path: pathlib.Path) -> pathlib.Path:
    root = envs.fake_env(tmp_path / "env", python=envs.PYTHON)
    (root / "bin" / "python").symlink_to(sys.executable)     # absolute, as in a venv
    return envs.pack(root, tmp_path / "env.tar.gz")


def test_an_archive_is_unpacked_once_until_its_mtime_changes(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))   # as TMPDIR would
    (tmp_path / "tmp").mkdir()
    archive = _archive(tmp_path)
    manager = pythonenv.Environments()
    first = manager.prepare("$$TRITON_MODEL_DIRECTORY/env.tar.gz", str(tmp_path))
    assert first.startswith(manager.base) and manager.base.startswith(str(tmp_path / "tmp"))
    assert os.readlink(os.path.join(first, "bin", "python")) == sys.executable
    assert manager.prepare(str(archive), "/elsewhere") == first        # shared, not redone
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = manager.prepare(str(archive), "")
    assert again != first and os.path.isdir(os.path.join(again, "lib"))
    base = manager.base
    manager.close()
    assert not os.path.exists(base)


def test_a_directory_is_used_in_place(tmp_path):
    root = envs.fake_env(tmp_path / "env", python=envs.PYTHON)
    manager = pythonenv.Environments()
    assert manager.prepare(str(tmp_path / "env"), "") == str(root)
    assert manager.base == ""                                  # nothing unpacked


def _tar(path: pathlib.Path, *members: tarfile.TarInfo) -> pathlib.Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"x" if info.isfile() else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def test_writing_through_a_link_out_of_the_destination_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tarfile.TarInfo("lib")
    link.type, link.linkname = tarfile.SYMTYPE, str(outside)
    archive = _tar(tmp_path / "e.tar.gz", link, tarfile.TarInfo("lib/planted"))
    (tmp_path / "dst").mkdir()
    with pytest.raises(TritonError) as err:
        pythonenv.extract(str(archive), str(tmp_path / "dst"))
    assert err.value.message == (
        "Internal: archive_write_header() failed with error code = -25 error message is "
        f"'lib/planted' would be extracted to '{outside}/planted', which is outside the "
        "destination")
    assert not (outside / "planted").exists()


def test_checks_name_what_is_missing(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(TritonError) as err:
        pythonenv.check(str(bare), "cfg-path")
    assert err.value.message == (f"Internal: Path {bare}/bin/activate does not exist. The Python "
                                 "environment should contain an 'activate' script.")
    (bare / "bin").mkdir()
    (bare / "bin" / "activate").write_text("")
    with pytest.raises(TritonError) as err:
        pythonenv.check(str(bare), "cfg-path")
    assert "environment cfg-path has no lib/python*/site-packages" in err.value.message
    ok = envs.fake_env(tmp_path / "ok", python=envs.PYTHON, numpy_version="1.24.0")
    pythonenv.check(str(ok), "cfg-path")                       # the floor itself passes
    old = envs.fake_env(tmp_path / "old", python=envs.PYTHON)
    (old / "lib" / envs.PYTHON / "site-packages" / "numpy-1.21.6-py3.11.egg-info").mkdir()
    with pytest.raises(TritonError) as err:
        pythonenv.check(str(old), "cfg-path")
    assert err.value.message == (
        "Internal: the Python execution environment cfg-path carries numpy 1.21; tritond's "
        "worker uses the environment's numpy and needs numpy >= 1.24")


def test_a_killed_server_s_environments_are_reaped_by_the_next(tmp_path):
    import subprocess

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f"{pythonenv.PREFIX}{dead.stdout.strip()}_abc123"
    live = tmp_path / f"{pythonenv.PREFIX}{os.getpid()}_def456"
    other = tmp_path / "tritond_python_env_notapid"
    for d in (stale, live, other):
        (d / "0").mkdir(parents=True)
    assert pythonenv.reap_orphans(str(tmp_path)) == [str(stale)]
    assert live.exists() and other.exists() and not stale.exists()
