import os

import pytest

from tritond.errors import Code, TritonError
from tritond.repository.paths import (EMPTY, check_model_name, check_model_paths, inside,
                                      model_file)
from tritond.repository.modelconfig import ModelConfig

TRAVERSAL = "model name must not contain path traversal characters"


@pytest.mark.parametrize("name, words", [
    ("../outside/evil", f"invalid model name '../outside/evil', {TRAVERSAL}"),
    ("/abs/evil", f"invalid model name '/abs/evil', {TRAVERSAL}"),
    ("..", f"invalid model name '..', {TRAVERSAL}"),
    (" .. ", TRAVERSAL),
    ("a\0b", TRAVERSAL),
    ("", EMPTY),
    ("   ", EMPTY),
])
def test_model_names(name, words):
    with pytest.raises(TritonError) as e:
        check_model_name(name)
    assert e.value.code == Code.INVALID_ARG and words in e.value.message


def test_good_name():
    assert check_model_name("simple.onnx-2") == "simple.onnx-2"


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.py").write_text("")
    (tmp_path / "outside.py").write_text("")
    (tmp_path / "m" / "1" / "link.py").symlink_to(tmp_path / "outside.py")
    (tmp_path / "m" / "2").symlink_to(tmp_path)
    return str(tmp_path / "m")


def test_model_files(model_dir):
    assert model_file(model_dir, 1, "model.py") == os.path.realpath(
        os.path.join(model_dir, "1", "model.py"))
    for version, filename, words in [
        (1, "../../outside.py", "model file '../../outside.py' is outside the model directory"),
        (1, "/etc/passwd", "model file '/etc/passwd' must be relative"),
        (1, "link.py", "model file 'link.py' is outside the model directory"),
        (1, "a\0b", "contains a NUL character"),
        (2, "outside.py", "version directory '2' is outside the model directory"),
    ]:
        with pytest.raises(TritonError) as e:
            model_file(model_dir, version, filename)
        assert e.value.code == Code.INVALID_ARG and words in e.value.message


def test_config_paths(model_dir):
    cfg = ModelConfig(name="m", default_model_filename="model.py")
    check_model_paths(cfg, model_dir, [1])
    cfg.cc_model_filenames["7.0"] = "../../outside.py"
    with pytest.raises(TritonError) as e:
        check_model_paths(cfg, model_dir, [1])
    assert "is outside the model directory" in e.value.message
    assert inside(model_dir, "1/model.py", "x").endswith("model.py")
    with pytest.raises(TritonError) as e:
        inside(model_dir, "../outside.py", "label_filename")
    assert "label_filename '../outside.py' is outside the model directory" in e.value.message
