"""What runs a model, as Triton core resolves it (src/backend_model.cc
GetBackendLibraryProperties): built-in backends, a Python-based backend's model.py, the
config's runtime, and Triton's load errors."""
from __future__ import annotations

import pytest

from tritond.errors import Code, TritonError
from tritond.repository import backends, modelconfig


def _cfg(text: str):
    return modelconfig.parse_pbtxt(f'name: "m"\n{text}', "m")


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "bk" / "pyb").mkdir(parents=True)
    (tmp_path / "bk" / "pyb" / "model.py").write_text("")
    (tmp_path / "m" / "1").mkdir(parents=True)
    return tmp_path / "bk", tmp_path / "m"


def _resolve(cfg, dirs):
    backends.resolve(cfg, str(dirs[1]), 1, str(dirs[0]))
    return cfg


def test_a_python_based_backend_gets_its_runtime(dirs):
    assert _resolve(_cfg('backend: "pyb"'), dirs).runtime == "model.py"
    assert _resolve(_cfg('backend: "pyb" runtime: "model.py"'), dirs).runtime == "model.py"


def test_built_in_backends_win_over_a_model_py_of_their_name(dirs):
    for name in backends.BUILT_IN:
        (dirs[0] / name).mkdir()
        (dirs[0] / name / "model.py").write_text("")
        assert _resolve(_cfg(f'backend: "{name}"'), dirs).runtime == ""
        runtime = f'runtime: "libtriton_{name}.so"'
        assert _resolve(_cfg(f'backend: "{name}" {runtime}'), dirs).runtime.endswith(".so")


def _error(cfg, dirs) -> TritonError:
    with pytest.raises(TritonError) as err:
        _resolve(cfg, dirs)
    return err.value


def test_nothing_found_is_tritons_error(dirs):
    err = _error(_cfg('backend: "gone"'), dirs)
    assert err.code == Code.INVALID_ARG and err.message == (
        "unable to find backend library for backend 'gone', try specifying runtime on the "
        "model configuration.")
    err = _error(_cfg('backend: "gone" runtime: "model.py"'), dirs)
    assert err.message == ("unable to find Python backend based backend library 'model.py' "
                           f"for model 'm', searched: '{dirs[0] / 'gone' / 'model.py'}'")
    err = _error(_cfg('backend: "pyb" runtime: "libother.so"'), dirs)
    v, m, b = dirs[1] / "1", dirs[1], dirs[0] / "pyb"
    assert err.message == ("unable to find backend library 'libother.so' for model 'm', "
                           f"searched: '{v}' '{m}' '{b}' ")


def test_a_cpp_library_triton_would_load_is_refused_not_passed_over(dirs):
    # Triton loads libtriton_pyb.so from the model directory before any model.py
    (dirs[1] / "libtriton_pyb.so").write_bytes(b"")
    err = _error(_cfg('backend: "pyb"'), dirs)
    assert err.code == Code.UNSUPPORTED and err.message == (
        f"model 'm': backend library '{dirs[1] / 'libtriton_pyb.so'}' (a C++ backend) is "
        "not supported by tritond yet")
    err = _error(_cfg('backend: "pyb" runtime: "libtriton_pyb.so"'), dirs)
    assert err.code == Code.UNSUPPORTED


def test_a_runtime_escaping_its_directory_is_tritons_error(dirs):
    (dirs[1] / "x.so").write_bytes(b"")      # found from the version directory
    err = _error(_cfg('backend: "pyb" runtime: "../x.so"'), dirs)
    assert err.message == (f"backend library name '../x.so' escapes backend directory "
                           f"'{dirs[1] / '1'}', for model 'm', check model config runtime "
                           "field")


def test_tritons_own_cpp_backends_stay_not_supported(dirs):
    from tritond.repository import support

    cfg = _resolve(_cfg('backend: "openvino"'), dirs)
    assert support.unsupported_features(cfg) == ["backend 'openvino'"]


def test_the_backends_execution_environment_is_used_unless_the_model_names_one(dirs):
    archive = dirs[0] / "pyb" / "pb_exec_env_model.py.tar.gz"
    archive.write_bytes(b"")
    cfg = _resolve(_cfg('backend: "pyb"'), dirs)
    assert cfg.parameters["EXECUTION_ENV_PATH"].string_value == str(archive)
    own = 'parameters { key: "EXECUTION_ENV_PATH" value { string_value: "x" } }'
    cfg = _resolve(_cfg(f'backend: "pyb" {own}'), dirs)
    assert cfg.parameters["EXECUTION_ENV_PATH"].string_value == "x"
