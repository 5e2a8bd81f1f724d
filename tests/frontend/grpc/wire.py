"""Requests as clients put them on the wire, and error helpers, for the codec tests."""
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import _utils as client_utils

from tritond.errors import Code, TritonError
from tritond.frontend.grpc import codec
from tritond.protos import grpc_service_pb2 as pb


def from_client(inputs, outputs=None, **kw) -> pb.ModelInferRequest:
    """A request exactly as tritonclient.grpc sends it, parsed with our proto."""
    args = dict(model_name="m", inputs=inputs, model_version="", request_id="", outputs=outputs,
                sequence_id=0, sequence_start=False, sequence_end=False, priority=0,
                timeout=None, parameters=None)
    args.update(kw)
    msg = client_utils._get_inference_request(**args)
    return pb.ModelInferRequest.FromString(msg.SerializeToString())


def client_input(name, arr, datatype):
    t = grpcclient.InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr)
    return t


def error_of(fn, *args) -> TritonError:
    with pytest.raises(TritonError) as info:
        fn(*args)
    return info.value


def invalid(msg) -> str:
    err = error_of(codec.decode_request, msg)
    assert err.code == Code.INVALID_ARG
    return err.message
