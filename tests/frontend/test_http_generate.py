"""The generate extension's JSON mapping (frontend/http/generate.py), without a server."""
from __future__ import annotations

import numpy as np
import pytest

from tritond.errors import TritonError
from tritond.frontend.http.generate import _shape, to_json, to_request
from tritond.frontend.types import InferResult, OutputTensor


class _Spec:
    def __init__(self, datatype, dims):
        self.datatype, self.dims = datatype, dims

    def metadata(self, batching):
        return {"shape": [-1, *self.dims] if batching else list(self.dims)}


class _MV:
    max_batch_size = 0
    inputs = {"text_input": _Spec("BYTES", [1]), "ids": _Spec("INT32", [-1, 2])}


def test_shape_distribution_is_tritons():
    assert _shape("x", 6, [-1, 2]) == [3, 2]
    assert _shape("x", 1, [1]) == [1]
    assert _shape("x", 4, [-1, -1]) == [1, 4]
    with pytest.raises(TritonError) as err:
        _shape("x", 3, [-1, 2])
    assert err.value.message == "The schema can not convert input 'x' to tensor with proper shape"


def test_keys_become_inputs_or_parameters():
    req = to_request({"text_input": "hi", "parameters": {"ids": [1, 2, 3, 4], "stream": True,
                                                         "temperature": 0.5}, "id": "9"},
                     _MV(), "m", "")
    assert [(t.name, t.datatype, t.shape) for t in req.inputs] == [
        ("text_input", "BYTES", [1]), ("ids", "INT32", [2, 2])]
    assert req.inputs[0].data == b"\x02\x00\x00\x00hi"
    assert np.frombuffer(req.inputs[1].data, np.int32).tolist() == [1, 2, 3, 4]
    assert req.parameters == {"stream": True, "temperature": 0.5, "id": "9"}
    assert req.id == "9"
    with pytest.raises(TritonError) as err:
        to_request({"parameters": 3}, _MV(), "m", "")
    assert err.value.message == ("Expected JSON object for keyword: 'parameters': attempt to "
                                 "access JSON non-object as object")


def test_response_object():
    text = OutputTensor("text_output", "BYTES", [1], memoryview(b"\x02\x00\x00\x00ok"), None)
    nums = OutputTensor("n", "INT32", [2], memoryview(np.array([3, 4], np.int32).tobytes()), None)
    res = InferResult("m", "1", "", {"p": 1}, [text, nums])
    doc = to_json(res)
    assert doc == {"model_name": "m", "model_version": "1", "p": 1,
                   "text_output": "ok", "n": [3, 4]}
    assert list(doc) == ["model_name", "model_version", "n", "p", "text_output"]  # std::map
