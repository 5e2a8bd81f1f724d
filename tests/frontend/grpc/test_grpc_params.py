"""gRPC codec: InferParameter rules for requests, tensors and requested outputs.

Reserved request keys, custom keys, shared-memory and classification
parameters, with Triton's exact messages.
"""
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tritond.frontend.grpc import codec
from tritond.frontend.types import RequestedOutput, ShmRef
from tritond.protos import grpc_service_pb2 as pb
from tests.frontend.grpc.wire import client_input, from_client, invalid


# ------------------------------------------------------------------ parameters


def test_reserved_parameters_from_tritonclient():
    msg = from_client([], request_id="r7", model_version="3", sequence_id=42,
                      sequence_start=True, sequence_end=False, priority=5, timeout=1000,
                      parameters={"s": "x", "i": -3, "b": True})
    msg.parameters["d"].double_param = 0.5    # tritonclient cannot send doubles
    req = codec.decode_request(msg)
    assert (req.model, req.version, req.id) == ("m", "3", "r7")
    assert req.parameters == {"sequence_id": 42, "sequence_start": True, "sequence_end": False,
                              "priority": 5, "timeout": 1000, "s": "x", "i": -3, "b": True,
                              "d": 0.5}
    assert req.outputs is None


def test_string_sequence_id():
    req = codec.decode_request(from_client([], sequence_id="corr-1"))
    assert req.parameters["sequence_id"] == "corr-1"


def with_param(key, **value) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m")
    msg.parameters[key].MergeFrom(pb.InferParameter(**value))
    return msg


def test_priority_accepts_int64_and_uint64():
    assert codec.decode_request(with_param("priority", int64_param=2)).parameters == {"priority": 2}
    assert codec.decode_request(with_param("priority", uint64_param=2**63)).parameters == {
        "priority": 2**63}
    assert invalid(with_param("priority", int64_param=-1)) == (
        "invalid value for 'priority', expected value >= 0.")
    assert invalid(with_param("priority", string_param="1")) == (
        "invalid value type for 'priority' parameter, expected int64_param or uint64_param.")


@pytest.mark.parametrize("key,value,expected", [
    ("timeout", {"uint64_param": 5}, "int64_param."),
    ("sequence_id", {"bool_param": True}, "int64_param or string_param."),
    ("sequence_start", {"int64_param": 1}, "bool_param."),
    ("sequence_end", {"string_param": "y"}, "bool_param."),
    ("custom", {"uint64_param": 1}, "int64_param, bool_param, or string_param."),
    ("custom", {}, "int64_param, bool_param, or string_param."),
])
def test_wrong_parameter_types(key, value, expected):
    assert invalid(with_param(key, **value)) == (
        f"invalid value type for '{key}' parameter, expected {expected}")


def test_triton_prefixed_keys():
    msg = with_param("triton_enable_empty_final_response", bool_param=True)
    assert codec.decode_request(msg).parameters == {"triton_enable_empty_final_response": True}
    assert invalid(with_param("triton_other", bool_param=True)).startswith(
        "parameter keys starting with 'triton_' are reserved for Triton usage.")


# --------------------------------------------------------------- tensor params


def shm_input(**params) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m")
    t = msg.inputs.add(name="A", datatype="INT32", shape=[1])
    for key, value in params.items():
        t.parameters[key].MergeFrom(pb.InferParameter(**value))
    return msg


@pytest.mark.parametrize("params,expected", [
    ({"shared_memory_byte_size": {"int64_param": 4}},
     "'shared_memory_byte_size' can not be specified without 'shared_memory_region' "
     "parameter for tensor 'A'"),
    ({"shared_memory_offset": {"int64_param": 4}},
     "'shared_memory_offset' can not be specified without 'shared_memory_region' "
     "parameter for tensor 'A'"),
    ({"shared_memory_region": {"string_param": "r"}},
     "'shared_memory_byte_size' must be specified along with 'shared_memory_region' "
     "parameter for tensor 'A'"),
    ({"shared_memory_region": {"int64_param": 1}, "shared_memory_byte_size": {"int64_param": 4}},
     "invalid value type for 'shared_memory_region' parameter for tensor 'A', "
     "expected string_param."),
    ({"shared_memory_region": {"string_param": "r"},
      "shared_memory_byte_size": {"uint64_param": 4}},
     "invalid value type for 'shared_memory_byte_size' parameter for tensor 'A', "
     "expected int64_param."),
])
def test_shm_parameter_errors(params, expected):
    assert invalid(shm_input(**params)) == expected


def test_other_input_parameters_are_kept():
    msg = from_client([client_input("A", np.zeros(1, np.int32), "INT32")])
    msg.inputs[0].parameters["note"].string_param = "hi"
    assert codec.decode_request(msg).inputs[0].parameters == {"note": "hi"}


def test_requested_outputs_classification_and_shm():
    o1 = grpcclient.InferRequestedOutput("P", class_count=3)
    o2 = grpcclient.InferRequestedOutput("Q")
    o2.set_shared_memory("out", 64, offset=8)
    o3 = grpcclient.InferRequestedOutput("R")
    req = codec.decode_request(from_client([], outputs=[o1, o2, o3]))
    assert req.outputs == [RequestedOutput("P", classification=3),
                           RequestedOutput("Q", shm=ShmRef("out", 8, 64)),
                           RequestedOutput("R")]


def out_param(**params) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m")
    o = msg.outputs.add(name="P")
    for key, value in params.items():
        o.parameters[key].MergeFrom(pb.InferParameter(**value))
    return msg


def test_classification_errors():
    assert invalid(out_param(classification={"uint64_param": 2})) == (
        "invalid value type for 'classification' parameter, expected int64_param")
    assert invalid(out_param(classification={"int64_param": 0})) == (
        "invalid value for 'classification' parameter, expected >= 0")
    assert invalid(out_param(classification={"int64_param": 2},
                             shared_memory_region={"string_param": "r"},
                             shared_memory_byte_size={"int64_param": 8})) == (
        "output can't set both 'shared_memory_region' and 'classification'")


def test_negative_timeout_wraps_to_uint64():
    """Triton hands the int64 to TRITONSERVER_InferenceRequestSetTimeoutMicroseconds,
    a uint64_t: -1 becomes 2**64 - 1 (no timeout that could ever pass), not an error."""
    from tritond.frontend.params import request_fields
    req = codec.decode_request(with_param("timeout", int64_param=-1))
    assert req.parameters == {"timeout": 2**64 - 1}
    assert request_fields(req.parameters)[1] == 2**64 - 1
    req = codec.decode_request(with_param("timeout", int64_param=-(2**63)))
    assert req.parameters == {"timeout": 2**63}
