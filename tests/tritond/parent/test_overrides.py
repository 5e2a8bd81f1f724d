"""Load-API override checks (tritond/parent/overrides.py)."""
from tritond.errors import Code
from tritond.parent import overrides


def test_file_paths_as_triton_localises_them():
    assert overrides.file_problem(["file:1/model.onnx", "file:a/b/c"], "{}") == ""
    assert "File name too long" in overrides.file_problem(["file:" + "A" * 256], "{}")
    assert overrides.file_problem(["file:" + "A" * 255], "{}") == ""
    assert "must stay within model directory" in overrides.file_problem(["file:../x"], "{}")
    assert "must stay within model directory" in overrides.file_problem(["file:/etc/x"], "{}")
    assert "must stay within model directory" in overrides.file_problem(["file:"], "{}")
    assert overrides.file_problem(["file:1/m"], "") == (
        "Load parameter 'config' must be specified for model file override")


def test_poll_failure_has_tritons_code_and_text():
    err = overrides.poll_failure("m", "why")
    assert err.code == Code.INTERNAL
    assert err.message == "failed to load 'm', failed to poll from model repository: why"
