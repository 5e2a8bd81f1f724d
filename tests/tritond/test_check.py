"""``tritond check REPO [MODEL...]`` run as a real command on good and bad repositories."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

from tests.server import REPO
from tests.workers import models

_IO = ('input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, '
       '{ name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
       'output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, '
       '{ name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n')


def tritond(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    script = pathlib.Path(sys.executable).with_name("tritond")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "tritond.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _onnx(repo: pathlib.Path, name: str, config: str) -> None:
    models.add_sub(repo, name)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "onnxruntime"\n{config}')


def _bad_repo(repo: pathlib.Path) -> pathlib.Path:
    _onnx(repo, "good", f"max_batch_size: 8\n{_IO}")
    _onnx(repo, "autofilled", "")
    _onnx(repo, "wrong_dtype", f"max_batch_size: 8\n{_IO.replace('TYPE_INT32', 'TYPE_FP32', 1)}")
    _onnx(repo, "syntax", 'max_batch_size: 8\ninput [ { name: "INPUT0" data_type: TYPE_INT32 '
                          'dims: [ 16 ] }\n')
    _onnx(repo, "unknown_field", "max_batch_size: 8\nmax_batch: 3\n")
    _onnx(repo, "seq",
          f"max_batch_size: 8\nsequence_batching {{ state [ {{ input_name: \"S\" "
          f"output_name: \"S_OUT\" data_type: TYPE_INT32 dims: [ 1 ] "
          f"use_growable_memory: true }} ] }}\n{_IO}")
    (repo / "nofile" / "1").mkdir(parents=True)
    (repo / "nofile" / "config.pbtxt").write_text(f'name: "nofile"\nbackend: "onnxruntime"\n{_IO}')
    (repo / "ens" / "1").mkdir(parents=True)
    (repo / "ens" / "config.pbtxt").write_text(
        'name: "ens"\nplatform: "ensemble"\nmax_batch_size: 8\n'
        'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
        'ensemble_scheduling { step [ { model_name: "missing" model_version: -1 '
        'input_map { key: "X" value: "IN" } output_map { key: "Y" value: "OTHER" } } ] }\n')
    return repo


def test_bundled_repository_is_clean():
    done = tritond("check", str(REPO))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert "4 models checked, 0 problems" in done.stderr


def test_one_line_per_problem_and_exit_1(tmp_path):
    repo = _bad_repo(tmp_path)
    done = tritond("check", str(repo))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    by_model = {line.split(":", 1)[0]: line for line in lines if not line.startswith("/")}
    assert "good" not in by_model and "autofilled" not in by_model, lines
    assert ("wrong_dtype: unable to load model 'wrong_dtype', configuration expects datatype "
            "TYPE_FP32 for input 'INPUT0', model provides TYPE_INT32") in lines
    syntax = repo / "syntax" / "config.pbtxt"
    assert any(line.startswith(f"{syntax}:5:1: ") for line in lines), lines
    assert any(line.startswith(f"{repo / 'unknown_field' / 'config.pbtxt'}:4:1: ")
               and "max_batch" in line for line in lines), lines
    assert by_model["seq"] == ("seq: In order to 'use_growable_memory', you must also enable "
                               "'use_single_buffer' for state input name 'S'.")
    assert "nofile" in by_model and "not found" in by_model["nofile"]
    ens = [line for line in lines if line.startswith("ens:")]
    assert any("names model 'missing', which is not in the repository" in line for line in ens)
    assert any("ensemble output 'OUT' for ensemble ens' is not used" in line for line in ens)
    assert len(lines) == 7 and "8 models checked, 7 problems" in done.stderr, lines


def test_named_models_only(tmp_path):
    repo = _bad_repo(tmp_path)
    assert tritond("check", str(repo), "good", "autofilled").returncode == 0
    done = tritond("check", str(repo), "good", "nosuch")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [f"nosuch: model 'nosuch' not found in '{repo}'"]


def test_corrupt_onnx_file_is_one_problem(tmp_path):
    _onnx(tmp_path, "good", f"max_batch_size: 8\n{_IO}")
    _onnx(tmp_path, "corrupt", f"max_batch_size: 8\n{_IO}")
    (tmp_path / "corrupt" / "1" / "model.onnx").write_bytes(b"not a protobuf")
    done = tritond("check", str(tmp_path))
    assert done.returncode == 1
    (line,) = done.stdout.splitlines()
    assert line.startswith("corrupt: unable to load model 'corrupt' from "), line


def test_reports_every_unsupported_feature_as_the_server_does(tmp_path):
    from tests.tritond.repository.test_support import FEATURES, OTHERS, _repo

    done = tritond("check", str(_repo(tmp_path)))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    for name, (feature, *_) in {**FEATURES, **OTHERS}.items():
        assert any(line.startswith(f"{name}: model '{name}': ") and feature in line
                   and line.endswith("is not supported by tritond yet") for line in lines), name


def test_usage_errors_exit_2(tmp_path):
    done = tritond("check", str(tmp_path / "absent"))
    assert done.returncode == 2 and "is not a directory" in done.stderr
    bare = tritond("check")
    # MODEL is optional: only the repository is missing
    assert bare.returncode == 2 and bare.stderr.rstrip().endswith(
        "the following arguments are required: repository"), bare.stderr


def test_flags_still_work_without_the_subcommand():
    done = tritond("--no-such-flag")
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    assert tritond("--version").stdout.startswith("tritond ")


def test_strict_requires_complete_configs(tmp_path):
    shutil.copytree(REPO / "simple", tmp_path / "simple")
    _onnx(tmp_path, "autofilled", "")
    done = tritond("check", "--strict-model-config", str(tmp_path))
    assert done.returncode == 1
    assert [line.split(":", 1)[0] for line in done.stdout.splitlines()] == ["autofilled"]


def test_execution_environments_are_checked_as_the_server_loads_them(tmp_path):
    from tests.integration import execenv_repo as envs

    repo = tmp_path / "repo"
    good = envs.model(repo, "good", "$$TRITON_MODEL_DIRECTORY/env.tar.gz")
    envs.pack(envs.venv(tmp_path / "venv"), good / "env.tar.gz")
    envs.model(repo, "missing", "$$TRITON_MODEL_DIRECTORY/nope.tar.gz")
    old = envs.model(repo, "py39", "$$TRITON_MODEL_DIRECTORY/env")
    envs.fake_env(old / "env")
    (tmp_path / "tmp").mkdir()
    done = tritond("check", str(repo), env={"TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"missing: Internal: Failed to get the canonical path for {repo}/missing/nope.tar.gz.",
        f"py39: Internal: the Python execution environment {old}/env is for python3.9 "
        f"(lib/python3.9/site-packages), but tritond's Python worker runs {envs.PYTHON}: the "
        f"environment's Python version must match the worker's "
        f"(lib/{envs.PYTHON}/site-packages)"]
    assert "3 models checked" in done.stderr
    assert not list((tmp_path / "tmp").iterdir())          # the good archive, unpacked and gone


def test_python_based_backends_are_resolved_in_the_backend_directory(tmp_path):
    repo, backends = tmp_path / "repo", tmp_path / "backends"
    (backends / "mine").mkdir(parents=True)
    (backends / "mine" / "model.py").write_text("")
    for name in ("uses_mine", "uses_gone"):
        (repo / name / "1").mkdir(parents=True)
    (repo / "uses_mine" / "config.pbtxt").write_text('backend: "mine"\n')
    (repo / "uses_gone" / "config.pbtxt").write_text('backend: "gone"\n')
    result = tritond("check", str(repo), f"--backend-directory={backends}")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "uses_gone: unable to find backend library for backend 'gone', try specifying "
        "runtime on the model configuration."]
