"""pb_utils' constructors and Logger refuse bad arguments as python_backend's binding does
(QA ``argument_validation``): TypeError where pybind11 cannot convert an argument (None,
an int log level), TritonModelException for python_backend's own checks."""
from __future__ import annotations

import numpy as np
import pytest

from tritond.workers.python import pb_utils

TME = pb_utils.TritonModelException
X = [pb_utils.Tensor("INPUT0", np.asarray([1, 2], dtype=np.int32))]


def request(**kw):
    return pb_utils.InferenceRequest(**({"inputs": X, "model_name": "m",
                                         "requested_output_names": ["out"]} | kw))


@pytest.mark.parametrize("field", ["inputs", "requested_output_names", "model_name",
                                   "correlation_id", "request_id", "model_version", "flags",
                                   "preferred_memory", "trace"])
def test_request_argument_none_is_a_type_error(field):
    with pytest.raises(TypeError):
        request(**{field: None})


def test_request_none_input_or_empty_output_name_is_the_backends_error():
    with pytest.raises(TME) as err:
        request(inputs=[None], request_id="r1")
    assert err.value.message() == ("Input tensor for request with id 'r1' and model name 'm' "
                                   "should not be empty.")
    with pytest.raises(TME, match="Requested output name for request with id '' and model "
                                  "name 'm' should not be empty."):
        request(requested_output_names=[""])
    with pytest.raises(TypeError):
        request(requested_output_names=[None])


def test_request_accepts_what_triton_accepts():
    assert request(correlation_id=5).correlation_id() == 5
    assert request(correlation_id="test_str_id-5").correlation_id() == "test_str_id-5"
    assert request().correlation_id() == 0
    request(inputs=[], requested_output_names=[])


def test_response_arguments():
    with pytest.raises(TME, match="Output tensor for inference response should not be empty."):
        pb_utils.InferenceResponse(output_tensors=[None])
    with pytest.raises(TypeError):
        pb_utils.InferenceResponse(output_tensors=None)
    pb_utils.InferenceResponse(output_tensors=[])
    pb_utils.InferenceResponse(X)
    assert pb_utils.InferenceResponse().output_tensors() == []


def test_tensor_arguments():
    arr = np.asarray([1, 2], dtype=np.int32)
    for name, value in ((None, arr), ("OUTPUT0", None), ("", None)):
        with pytest.raises(TypeError):
            pb_utils.Tensor(name, value)
    with pytest.raises(TME, match="Provided tensor is not supported"):
        pb_utils.Tensor.from_dlpack("OUTPUT0", None)
    with pytest.raises(TME, match="Tensor name cannot be an empty string."):
        pb_utils.Tensor.from_dlpack("", None)


def test_logger_levels_are_an_enum():
    log = pb_utils.Logger
    for call in (lambda: log.log("x", None), lambda: log.log("x", 1), lambda: log.log_info(None),
                 lambda: log.log_warn(None), lambda: log.log_error(None),
                 lambda: log.log_verbose(None)):
        with pytest.raises(TypeError):
            call()
    log.log("Level unspecified")
    log.log("warned", log.WARNING)
    assert int(log.VERBOSE) == 3 and log.LogLevel.ERROR is log.ERROR


def test_an_empty_tensor_name_is_refused_as_by_pbtensor():
    """python_backend's PbTensor constructor refuses "" (its model sees the exception);
    the array is checked first (pybind11's TypeError for None, above)."""
    for arr in (np.ones(2, np.float32), np.ones((2, 2), np.float32).T,
                np.array([b"a"], dtype=object)):
        with pytest.raises(TME) as err:
            pb_utils.Tensor("", arr)
        assert err.value.message() == "Tensor name cannot be an empty string."


_TENSOR_SIGNATURE = (
    "__init__(): incompatible constructor arguments. The following argument types are "
    "supported:\n    1. c_python_backend_utils.Tensor(arg0: str, arg1: numpy.ndarray)\n\n"
    "Invoked with: ")


@pytest.mark.parametrize("args, kwargs, shown", [
    (("X", [1, 2]), {}, "'X', [1, 2]"),
    (("X", np.float32(1.5)), {}, f"'X', {np.float32(1.5)!r}"),   # numpy's own repr
    (("X", np.ones(2, np.int32), 8), {}, "'X', array([1, 1], dtype=int32), 8"),
    (("X",), {"numpy_array": np.zeros(1, np.int8)},
     "'X'; kwargs: numpy_array=array([0], dtype=int8)"),
    ((None, np.zeros(1, np.int8)), {}, "None, array([0], dtype=int8)"),
    (("", None), {}, "'', None"),
])
def test_a_tensor_takes_a_name_and_a_numpy_array_only(args, kwargs, shown):
    """python_backend binds ``py::init(&PbTensor::FromNumpy)`` over (std::string, py::array):
    pybind11 refuses anything else with its TypeError (no list or numpy scalar is
    converted, no third argument, no keywords: the arguments have no names)."""
    with pytest.raises(TypeError) as err:
        pb_utils.Tensor(*args, **kwargs)
    assert str(err.value) == _TENSOR_SIGNATURE + shown


def test_a_tensor_name_may_be_bytes_as_pybind11_converts_it():
    t = pb_utils.Tensor(b"X", np.ones((2, 2), np.float32).T)
    assert t.name() == "X" and t.shape() == [2, 2] and t.as_numpy().flags.c_contiguous
    assert pb_utils.Tensor("Y", np.array(3, np.int64)).shape() == []    # a 0-d array is one
