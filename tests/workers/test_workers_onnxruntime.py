"""OnnxRuntimeBackend against real onnxruntime sessions of tiny models."""
from __future__ import annotations

import numpy as np
import pytest

from tritond.errors import Code, TritonError
from tritond.workers.backend import backend_class
from tritond.workers.onnxruntime import OnnxRuntimeBackend

from tests.specs import spec_from_dict

from . import models
from .helpers import context, work


def completed(model_dir, config=None, options=None):
    be = OnnxRuntimeBackend(context(model_dir, options=options))
    cfg = be.auto_complete(dict(config or {"name": model_dir.name, "backend": "onnxruntime"}))
    be.load(spec_from_dict(cfg))
    return be, cfg


def test_registry_imports_onnxruntime_backend():
    assert backend_class("onnxruntime") is OnnxRuntimeBackend


def test_unknown_backend_is_unsupported_and_named():
    with pytest.raises(TritonError) as err:
        backend_class("tensorflow")
    assert err.value.code == Code.UNSUPPORTED
    assert "'tensorflow'" in err.value.message


def test_auto_complete_add_sub(repo):
    _, cfg = completed(models.add_sub(repo))
    assert cfg["max_batch_size"] == 4
    assert cfg["dynamic_batching"] == {}
    assert cfg["input"] == [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16]},
                            {"name": "INPUT1", "data_type": "TYPE_INT32", "dims": [16]}]
    assert [o["name"] for o in cfg["output"]] == ["OUTPUT0", "OUTPUT1"]


def test_auto_complete_default_max_batch_size_from_backend_config(repo):
    opts = {"backend_config": ["onnxruntime,default-max-batch-size=8"]}
    _, cfg = completed(models.add_sub(repo), options=opts)
    assert cfg["max_batch_size"] == 8


def test_auto_complete_keeps_given_io_and_scheduler(repo):
    model = models.add_sub(repo)
    given = {"name": "add_sub", "backend": "onnxruntime", "max_batch_size": 2,
             "sequence_batching": {},
             "input": [{"name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16]},
                       {"name": "INPUT1", "data_type": "TYPE_INT32", "dims": [16]}]}
    _, cfg = completed(model, given)
    assert cfg["input"] == given["input"]
    assert "dynamic_batching" not in cfg
    assert len(cfg["output"]) == 2


def test_auto_complete_scalar_items_get_reshape(repo):
    _, cfg = completed(models.string_identity(repo))
    assert cfg["input"] == [{"name": "INPUT0", "data_type": "TYPE_STRING", "dims": [1],
                             "reshape": {"shape": []}}]


def test_auto_complete_not_batchable(repo):
    _, cfg = completed(models.fixed_shape(repo))
    assert cfg["max_batch_size"] == 0
    assert "dynamic_batching" not in cfg
    assert cfg["input"][0]["dims"] == [2, 3]


def test_auto_complete_rejects_batching_for_static_model(repo):
    be = OnnxRuntimeBackend(context(models.fixed_shape(repo)))
    with pytest.raises(TritonError) as err:
        be.auto_complete({"name": "fixed", "max_batch_size": 4})
    assert err.value.message == ("autofill failed for model 'fixed': model does not support "
                                 "batching while non-zero max_batch_size is specified")  # Triton's


def test_missing_model_file_names_the_file(repo):
    model = models.add_sub(repo)
    be = OnnxRuntimeBackend(context(model))
    with pytest.raises(TritonError) as err:
        be.load(spec_from_dict({"name": "add_sub", "default_model_filename": "other.onnx"}))
    assert err.value.code == Code.NOT_FOUND
    assert str(model / "1" / "other.onnx") in err.value.message


def test_corrupt_model_file_names_the_file(repo):
    path = repo / "bad" / "1" / "model.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx model")
    with pytest.raises(TritonError) as err:
        OnnxRuntimeBackend(context(repo / "bad")).load(spec_from_dict({"name": "bad"}))
    assert err.value.code == Code.INTERNAL
    assert str(path) in err.value.message


def test_execute_add_sub(repo):
    be, _ = completed(models.add_sub(repo))
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.ones((2, 16), dtype=np.int32)
    (res,) = be.execute([work({"INPUT0": a, "INPUT1": b}, ["OUTPUT0", "OUTPUT1"])])
    assert res.error is None
    np.testing.assert_array_equal(res.outputs["OUTPUT0"], a + b)
    np.testing.assert_array_equal(res.outputs["OUTPUT1"], a - b)


def test_execute_only_requested_output(repo):
    be, _ = completed(models.add_sub(repo))
    a = np.zeros((1, 16), dtype=np.int32)
    (res,) = be.execute([work({"INPUT0": a, "INPUT1": a}, ["OUTPUT1"])])
    assert list(res.outputs) == ["OUTPUT1"]


def test_execute_strings_round_trip_as_bytes(repo):
    be, _ = completed(models.string_identity(repo))
    arr = np.array([b"hello", "caf\u00e9".encode(), b""], dtype=object)
    (res,) = be.execute([work({"INPUT0": arr}, ["OUTPUT0"])])
    assert res.outputs["OUTPUT0"].tolist() == [b"hello", "caf\u00e9".encode(), b""]


def test_non_utf8_string_fails_only_that_request(repo):
    be, _ = completed(models.string_identity(repo))
    bad = work({"INPUT0": np.array([b"\xff"], dtype=object)}, ["OUTPUT0"], rid=1)
    good = work({"INPUT0": np.array([b"ok"], dtype=object)}, ["OUTPUT0"], rid=2)
    r_bad, r_good = be.execute([bad, good])
    assert r_bad.error.code == Code.INVALID_ARG and "UTF-8" in r_bad.error.message
    assert r_good.outputs["OUTPUT0"].tolist() == [b"ok"]


def test_session_threads_from_config_parameters(repo):
    cfg = {"name": "identity_fp32",
           "parameters": {"intra_op_thread_count": {"string_value": "2"}}}
    be, _ = completed(models.identity_fp32(repo), cfg)
    opts = be.session.get_session_options()
    assert opts.intra_op_num_threads == 2
    assert opts.inter_op_num_threads == 1


def test_default_is_one_intra_op_thread(repo):
    be, _ = completed(models.identity_fp32(repo))
    assert be.session.get_session_options().intra_op_num_threads == 1
    assert be.session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="onnxruntime-gpu installed")
def test_gpu_kind_without_cuda_fails_naming_onnxruntime_gpu(repo):
    # no silent CPU fallback: a KIND_GPU instance on the CPU would hide the cause
    model = models.identity_fp32(repo)
    be = OnnxRuntimeBackend(context(model, kind="GPU"))
    with pytest.raises(TritonError) as err:
        be.auto_complete({"name": "identity_fp32"})
    assert err.value.code == Code.UNAVAILABLE
    assert "needs the CUDA execution provider of onnxruntime-gpu" in err.value.message
