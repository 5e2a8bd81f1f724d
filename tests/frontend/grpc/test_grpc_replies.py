"""Repository request parameters as Triton's gRPC server reads them (frontend/grpc/replies.py)."""
import pytest

from tritond.errors import Code, TritonError
from tritond.frontend.grpc import replies
from tritond.protos import grpc_service_pb2 as pb


def _request(**params) -> pb.RepositoryModelLoadRequest:
    req = pb.RepositoryModelLoadRequest(model_name="m")
    for key, (kind, value) in params.items():
        setattr(req.parameters[key], kind, value)
    return req


def _error(req) -> TritonError:
    with pytest.raises(TritonError) as exc:
        replies.load_params(req.parameters)
    return exc.value


def test_config_and_files():
    req = _request(config=("string_param", "{}"))
    req.parameters["file:1/model.onnx"].bytes_param = b"x"
    assert replies.load_params(req.parameters) == {"config": "{}", "file:1/model.onnx": b"x"}


def test_wrong_types_and_unknown_names():
    err = _error(_request(config=("bytes_param", b"{}")))
    assert (err.code, err.message) == (
        Code.INVALID_ARG, "invalid value type for load parameter 'config', expected string_param.")
    req = _request()
    req.parameters["file:a"].string_param = "x"
    assert _error(req).message == (
        "invalid value type for load parameter 'file:a', expected bytes_param.")
    err = _error(_request(other=("bool_param", True)))
    assert (err.code, err.message) == (Code.INVALID_ARG, "unrecognized load parameter 'other'.")
