"""PythonBackend running Triton-style model.py files unchanged."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tritond.errors import Code, TritonError, status_text
from tritond.workers.backend import backend_class
from tritond.workers.python.backend import PythonBackend

from tests.specs import spec_from_dict

from . import models
from .helpers import context, work


def loaded(model_dir, config: dict, auto_complete: bool = True) -> PythonBackend:
    be = PythonBackend(context(model_dir))
    if auto_complete:
        config = be.auto_complete(config)
    be.load(spec_from_dict(config))
    return be


def fp32(*values):
    return np.array(values, dtype=np.float32)


def test_registry_imports_python_backend():
    assert backend_class("python") is PythonBackend


def test_triton_add_sub_runs_unchanged(repo, capfd):
    model = models.python_model(repo, "add_sub_py", models.TRITON_ADD_SUB)
    be = loaded(model, models.ADD_SUB_CONFIG)
    assert sys.modules["triton_python_backend_utils"].__name__.endswith("pb_utils")
    reqs = [work({"INPUT0": fp32(1, 2, 3, 4), "INPUT1": fp32(1, 1, 1, 1)}, ["OUTPUT0", "OUTPUT1"],
                 rid=1),
            work({"INPUT0": fp32(0, 0, 0, 0), "INPUT1": fp32(2, 2, 2, 2)}, ["OUTPUT0", "OUTPUT1"],
                 rid=2)]
    r1, r2 = be.execute(reqs)
    np.testing.assert_array_equal(r1.outputs["OUTPUT0"], fp32(2, 3, 4, 5))
    np.testing.assert_array_equal(r1.outputs["OUTPUT1"], fp32(0, 1, 2, 3))
    np.testing.assert_array_equal(r2.outputs["OUTPUT1"], fp32(-2, -2, -2, -2))
    be.unload()
    assert "Cleaning up..." in capfd.readouterr().out


def test_initialize_args_are_tritons(repo):
    model = models.python_model(repo, "add_sub_py", models.TRITON_ADD_SUB)
    be = loaded(model, models.ADD_SUB_CONFIG)
    args = be.model.args
    assert set(args) == {"model_config", "model_instance_kind", "model_instance_name",
                         "model_instance_device_id", "model_repository", "model_version",
                         "model_name"}
    assert all(isinstance(v, str) for v in args.values())
    assert json.loads(args["model_config"])["name"] == "add_sub_py"
    assert args["model_repository"] == str(model)
    assert (args["model_version"], args["model_name"], args["model_instance_kind"]) == \
        ("1", "add_sub_py", "CPU")


AUTO = '''
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        auto_complete_model_config.add_input({"name": "IN", "data_type": "TYPE_STRING", "dims": [-1]})
        auto_complete_model_config.add_output({"name": "OUT", "data_type": "TYPE_INT64", "dims": [-1]})
        auto_complete_model_config.set_max_batch_size(8)
        auto_complete_model_config.set_dynamic_batching()
        return auto_complete_model_config

    def execute(self, requests):
        out = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            assert data.dtype == object and all(isinstance(x, bytes) for x in data.flat)
            lengths = [len(x) for x in data.flat]
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", __import__("numpy").array(lengths, dtype="int64"))],
                parameters={"count": len(lengths)}))
        return out
'''


def test_auto_complete_config_and_bytes_inputs(repo):
    model = models.python_model(repo, "auto", AUTO)
    be = PythonBackend(context(model))
    cfg = be.auto_complete({"name": "auto", "backend": "python"})
    assert cfg["max_batch_size"] == 8 and cfg["dynamic_batching"] == {}
    assert cfg["input"] == [{"name": "IN", "data_type": "TYPE_STRING", "dims": [-1]}]
    be.load(spec_from_dict(cfg))
    (res,) = be.execute([work({"IN": np.array([b"ab", b"", b"xyz"], dtype=object)}, ["OUT"])])
    assert res.outputs["OUT"].tolist() == [2, 0, 3]
    assert res.parameters == {"count": 3}


def test_auto_complete_conflict_is_a_load_error(repo):
    model = models.python_model(repo, "auto", AUTO)
    be = PythonBackend(context(model))
    with pytest.raises(TritonError) as err:
        be.auto_complete({"name": "auto", "max_batch_size": 16})
    assert "configuration specified max_batch_size 16" in err.value.message


def test_auto_complete_config_returning_nothing_is_tritons_error(repo):
    # L0_model_config autofill_noplatform/python/no_return: python_backend's text
    model = models.python_model(repo, "no_return", AUTO.replace(
        "        return auto_complete_model_config\n", "        pass\n"))
    with pytest.raises(TritonError) as err:
        PythonBackend(context(model)).auto_complete({"name": "no_return"})
    assert err.value.message == ("auto_complete_config function in model 'no_return' must "
                                 "return a valid pb.ModelConfig object.")


ERRORS = '''
import triton_python_backend_utils as pb_utils
import numpy as np

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            mode = pb_utils.get_input_tensor_by_name(request, "MODE").as_numpy()[0]
            if mode == 1:
                out.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("bad input", pb_utils.TritonError.INVALID_ARG)))
            elif mode == 2:
                raise pb_utils.TritonModelException("model blew up")
            elif mode == 3:
                return out  # wrong length
            elif mode == 4:
                out.append(None)
            elif mode == 5:
                return tuple(out)
            elif mode == 6:
                return pb_utils.InferenceResponse([])
            elif mode == 7:
                out.append(pb_utils.InferenceResponse(error="plain string"))
            else:
                out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([mode]))]))
        return out
'''
ERRORS_CONFIG = {"name": "errors", "backend": "python", "max_batch_size": 0,
                 "input": [{"name": "MODE", "data_type": "TYPE_INT32", "dims": [1]}],
                 "output": [{"name": "OUT", "data_type": "TYPE_INT32", "dims": [1]}]}


def modes(*values):
    return [work({"MODE": np.array([v], dtype=np.int32)}, ["OUT"], rid=i)
            for i, v in enumerate(values)]


def test_error_response_fails_only_that_request(repo):
    be = loaded(models.python_model(repo, "errors", ERRORS), ERRORS_CONFIG)
    ok, bad = be.execute(modes(0, 1))
    assert ok.error is None and ok.outputs["OUT"].tolist() == [0]
    assert bad.error.code == Code.INVALID_ARG and bad.error.message == "bad input"


def test_exception_fails_the_batch_in_tritons_format(repo, caplog):
    model_dir = models.python_model(repo, "errors", ERRORS)
    be = loaded(model_dir, ERRORS_CONFIG)
    with caplog.at_level("ERROR", logger="tritond.model"):
        results = be.execute(modes(0, 2))
    model_py = model_dir / "1" / "model.py"
    expected = (f"Failed to process the request(s) for model '{be.ctx.instance}', message: "
                f"TritonModelException: model blew up\n\nAt:\n  {model_py}(14): execute\n")
    assert [(r.error.code, r.error.message) for r in results] == [(Code.INTERNAL, expected)] * 2
    logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 1 and f'File "{model_py}", line 14, in execute' in logged[0].getMessage()


INIT_RAISES = '''
class TritonPythonModel:
    def initialize(self, args):
        self.table = {}["missing"]

    def execute(self, requests):
        return []
'''


def test_initialize_exception_keeps_type_and_line(repo, caplog):
    model_dir = models.python_model(repo, "init_raises", INIT_RAISES)
    with caplog.at_level("ERROR", logger="tritond.model"), pytest.raises(TritonError) as err:
        loaded(model_dir, ERRORS_CONFIG | {"name": "init_raises"})
    model_py = model_dir / "1" / "model.py"
    assert status_text(err.value.code, err.value.message) == (   # the version's reason
        f"Internal: KeyError: "
                                 f"'missing'\n\nAt:\n  {model_py}(4): initialize\n")
    assert f'File "{model_py}", line 4, in initialize' in caplog.text


@pytest.mark.parametrize("bad_mode,found", [(5, "tuple"),
                                            (6, "c_python_backend_utils.InferenceResponse")])
def test_a_return_that_is_no_list_fails_every_request_in_the_stubs_words(repo, bad_mode, found):
    # python_backend checks for a list (a tuple too fails) and prints the type as Python
    # does, its own classes as c_python_backend_utils's (checked against Triton 2.51)
    be = loaded(models.python_model(repo, "errors", ERRORS), ERRORS_CONFIG)
    results = be.execute(modes(0, bad_mode))
    assert [r.error.message for r in results] == [
        f"Failed to process the request(s) for model '{be.ctx.instance}', message: Expected "
        f"a list in the execute return, found type '<class '{found}'>'."] * 2


def test_an_error_that_is_no_triton_error_fails_constructing_the_response(repo):
    be = loaded(models.python_model(repo, "errors", ERRORS), ERRORS_CONFIG)
    results = be.execute(modes(7))
    assert "TypeError: InferenceResponse: 'error' must be a TritonError, not str" in \
        results[0].error.message


@pytest.mark.parametrize("bad_mode", [3, 4])
def test_wrong_length_or_none_fails_every_request(repo, bad_mode):
    be = loaded(models.python_model(repo, "errors", ERRORS), ERRORS_CONFIG)
    results = be.execute(modes(0, bad_mode))
    assert len(results) == 2
    assert all(r.error is not None and r.error.code == Code.INTERNAL for r in results)


ASYNC_AND_SENDER = '''
import asyncio
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    async def initialize(self, args):
        await asyncio.sleep(0)
        self.ready = True

    async def execute(self, requests):
        await asyncio.sleep(0)
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            sender = request.get_response_sender()
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x * 2)]),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''


def test_async_execute_with_response_sender(repo):
    cfg = {"name": "asyncm", "backend": "python",
           "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
           "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}]}
    be = loaded(models.python_model(repo, "asyncm", ASYNC_AND_SENDER), cfg)
    assert be.model.ready
    (res,) = be.execute([work({"X": fp32(1, 2)}, ["Y"])])
    np.testing.assert_array_equal(res.outputs["Y"], fp32(2, 4))
    be.unload()


def test_missing_model_file_names_the_file(repo):
    model = repo / "nothing"
    (model / "1").mkdir(parents=True)
    with pytest.raises(TritonError) as err:
        PythonBackend(context(model)).auto_complete({"name": "nothing"})
    assert str(model / "1" / "model.py") in err.value.message


def test_import_error_is_a_load_error(repo):
    model = models.python_model(repo, "broken", "import does_not_exist_module\n")
    with pytest.raises(TritonError) as err:
        PythonBackend(context(model)).auto_complete({"name": "broken"})
    assert "does_not_exist_module" in err.value.message


def test_two_models_with_the_same_version_do_not_shadow_each_other(repo):
    a = loaded(models.python_model(repo, "add_sub_py", models.TRITON_ADD_SUB), models.ADD_SUB_CONFIG)
    b = loaded(models.python_model(repo, "errors", ERRORS), ERRORS_CONFIG)
    assert a.module is not b.module
    assert a.module.__file__.startswith(str(repo / "add_sub_py"))


DECOUPLED = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            for i in range(3):
                sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x + i)]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''


def test_decoupled_model_answers_through_its_senders(repo):
    cfg = {"name": "dec", "backend": "python", "model_transaction_policy": {"decoupled": True},
           "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
           "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}]}
    be = loaded(models.python_model(repo, "dec", DECOUPLED), cfg)
    (res,) = be.execute([work({"X": fp32(1, 2)}, ["Y"])])
    assert res.streamed and res.error is None     # no hub here: nothing else to check
    be.unload()




USER_READINESS = '''
import asyncio

class TritonPythonModel:
    def initialize(self, args):
        self.answer = args["model_name"]

    def execute(self, requests):
        return []

    def is_ready(self):
        if self.answer not in ("t", "f", "n"):
            raise ValueError("not today")
        return {"t": True, "f": False, "n": 1}[self.answer]
'''

ASYNC_READINESS = '''
import asyncio

class TritonPythonModel:
    def execute(self, requests):
        return []

    async def is_ready(self):
        await asyncio.sleep(0)
        return True
'''

READINESS_CFG = {"backend": "python",
                 "input": [{"name": "X", "data_type": "TYPE_FP32", "dims": [2]}],
                 "output": [{"name": "Y", "data_type": "TYPE_FP32", "dims": [2]}]}


def _instance(repo, name: str, source: str) -> PythonBackend:
    be = PythonBackend(context(models.python_model(repo, name, source)))
    be.load(spec_from_dict(be.auto_complete({**READINESS_CFG, "name": name})))
    return be


def test_user_defined_is_ready_is_called(repo):
    # python_backend calls is_ready() on every model-ready query: a bool is the answer,
    # an exception or another type an error (the model is then not ready).
    assert _instance(repo, "t", USER_READINESS).user_ready() is True
    assert _instance(repo, "f", USER_READINESS).user_ready() is False
    with pytest.raises(TritonError, match="is_ready\\(\\) must return a boolean value"):
        _instance(repo, "n", USER_READINESS).user_ready()
    with pytest.raises(ValueError, match="not today"):
        _instance(repo, "e", USER_READINESS).user_ready()
    coroutine = _instance(repo, "c", ASYNC_READINESS)
    try:
        assert coroutine.user_ready() is True      # run on the model's event loop
    finally:
        coroutine.unload()
    assert PythonBackend(context(repo)).user_ready is None   # no model: the table answers
