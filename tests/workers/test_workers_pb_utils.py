"""triton_python_backend_utils surface: types, tensors, ModelConfig rules, logger, metrics."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from tritond.workers.python import pb_utils


def test_type_helpers():
    assert pb_utils.triton_string_to_numpy("TYPE_FP32") is np.float32
    assert pb_utils.triton_string_to_numpy("TYPE_STRING") is np.object_
    with pytest.raises(KeyError):
        pb_utils.triton_string_to_numpy("TYPE_BF16")
    assert pb_utils.triton_to_numpy_type(13) is np.object_
    assert pb_utils.triton_to_numpy_type(8) is np.int32
    assert pb_utils.numpy_to_triton_type(np.float16) == 10
    assert pb_utils.numpy_to_triton_type(np.object_) == 13
    assert pb_utils.numpy_to_triton_type(np.bytes_) == 13
    assert pb_utils.numpy_to_triton_type(np.bool_) == 1


def test_bytes_serialisation_round_trip():
    arr = np.array([[b"a", b""], [b"xyz", "\u00e9".encode()]], dtype=object)
    data = pb_utils.serialize_byte_tensor(arr)
    assert data[:5] == b"\x01\x00\x00\x00a"
    assert pb_utils.deserialize_bytes_tensor(data).tolist() == [b"a", b"", b"xyz", "\u00e9".encode()]
    assert pb_utils.serialize_byte_tensor(np.array([], dtype=object)) == ()


def test_tensor_basics_and_dlpack():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = pb_utils.Tensor("x", x)
    assert (t.name(), t.triton_dtype(), t.shape(), t.is_cpu()) == ("x", 11, [2, 3], True)
    assert t.as_numpy() is x  # no copy
    back = pb_utils.Tensor.from_dlpack("y", t.to_dlpack())
    np.testing.assert_array_equal(back.as_numpy(), x)
    via_protocol = pb_utils.Tensor.from_dlpack("z", t)
    assert np.shares_memory(via_protocol.as_numpy(), x)
    assert t.__dlpack_device__() == (1, 0)


def test_request_and_response_objects():
    t = pb_utils.Tensor("IN", np.zeros(2, np.int32))
    req = pb_utils.InferenceRequest(request_id="r1", correlation_id=7, inputs=[t],
                                    requested_output_names=["OUT"], model_name="m",
                                    parameters={"a": 1, "b": "x"})
    assert pb_utils.get_input_tensor_by_name(req, "IN") is t
    assert pb_utils.get_input_tensor_by_name(req, "NOPE") is None
    assert req.parameters() == '{"a":1,"b":"x"}'     # TritonJson's compact text
    assert (req.request_id(), req.correlation_id(), req.requested_output_names()) == \
        ("r1", 7, {"OUT"})                          # a set, as python_backend's binding
    assert req.is_cancelled() is False and req.trace().get_context() is None
    with pytest.raises(pb_utils.TritonModelException, match="only available inside a tritond worker"):
        req.exec()
    resp = pb_utils.InferenceResponse([t], parameters={"k": True})
    assert pb_utils.get_output_tensor_by_name(resp, "IN") is t
    assert not resp.has_error() and json.loads(resp.parameters()) == {"k": True}
    err = pb_utils.InferenceResponse(error=pb_utils.TritonError("no", pb_utils.TritonError.NOT_FOUND))
    assert err.has_error() and err.error().code() == 2 and err.error().message() == "no"
    with pytest.raises(pb_utils.TritonModelException):
        pb_utils.InferenceResponse(output_tensors=(t,))


def test_parameters_text_is_tritonjsons():
    """python_backend writes ``parameters()`` with TritonJson (rapidjson): a control
    character as \\u00XX with upper-case hex, DEL and non-ASCII as they are (Triton 2.51's
    text for these, an oracle run; Python's json would write \\u001f and \\u00e9)."""
    req = pb_utils.InferenceRequest(inputs=[], requested_output_names=[], model_name="m",
                                    parameters={"q\x1f": "a\x1fb\x01\x7f\u00e9"})
    assert req.parameters() == '{"q\\u001F":"a\\u001Fb\\u0001\x7f\u00e9"}'


def test_error_codes_match_tritonserver():
    E = pb_utils.TritonError
    assert [E.UNKNOWN, E.INTERNAL, E.NOT_FOUND, E.INVALID_ARG, E.UNAVAILABLE, E.UNSUPPORTED,
            E.ALREADY_EXISTS, E.CANCELLED] == list(range(8))
    assert E("m").code() == E.INTERNAL


def test_response_sender_non_decoupled_sends_once():
    sender = pb_utils.InferenceRequest(inputs=[], requested_output_names=[]).get_response_sender()
    sender.send(pb_utils.InferenceResponse([]), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    with pytest.raises(pb_utils.TritonModelException):
        sender.send(pb_utils.InferenceResponse([]))


def base_config(**extra):
    return pb_utils.ModelConfig(json.dumps({"name": "m", "max_batch_size": 0, "input": [],
                                            "output": [], **extra}))


def test_model_config_add_and_merge():
    mc = base_config(input=[{"name": "A", "data_type": "TYPE_INVALID", "dims": []}])
    mc.add_input({"name": "A", "data_type": "TYPE_FP32", "dims": [4], "optional": True})
    mc.add_output({"name": "B", "data_type": "TYPE_FP32", "dims": [4]})
    d = mc.as_dict()
    assert d["input"] == [{"name": "A", "data_type": "TYPE_FP32", "dims": [4], "optional": True}]
    assert d["output"] == [{"name": "B", "data_type": "TYPE_FP32", "dims": [4]}]


@pytest.mark.parametrize("tensor, message", [
    ({"name": "A", "data_type": "TYPE_FP32", "dims": [4], "format": 1}, "contains property other"),
    ({"data_type": "TYPE_FP32", "dims": [4]}, "missing 'name'"),
    ({"name": "A", "dims": [4]}, "missing 'data_type'"),
    ({"name": "A", "data_type": "TYPE_FP32"}, "missing 'dims'"),
    ({"name": "X", "data_type": "TYPE_INT8", "dims": [2]}, "configuration expects datatype TYPE_FP32"),
    ({"name": "X", "data_type": "TYPE_FP32", "dims": [3]}, "the model expects dims [3]"),
    ({"name": "X", "data_type": "TYPE_FP32", "dims": [2], "optional": True}, "expects optional True"),
])
def test_model_config_add_input_errors(tensor, message):
    mc = base_config(input=[{"name": "X", "data_type": "TYPE_FP32", "dims": [2], "optional": False}])
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        mc.add_input(tensor)


def test_model_config_output_has_no_optional():
    with pytest.raises(ValueError, match="'name', 'data_type' and 'dims'"):
        base_config().add_output({"name": "O", "data_type": "TYPE_FP32", "dims": [1],
                                  "optional": True})


def test_model_config_batching_and_policy_rules():
    mc = base_config(max_batch_size=8)
    mc.set_max_batch_size(16)
    with pytest.raises(ValueError, match="configuration specified max_batch_size 16"):
        mc.set_max_batch_size(4)
    mc.set_dynamic_batching()
    assert mc.as_dict()["dynamic_batching"] == {}
    with pytest.raises(ValueError, match="sequence_batching"):
        base_config(sequence_batching={}).set_dynamic_batching()
    mc.set_model_transaction_policy({"decoupled": False})
    with pytest.raises(ValueError, match="already set to 'False'"):
        mc.set_model_transaction_policy({"decoupled": True})
    with pytest.raises(ValueError, match="other than 'decoupled'"):
        mc.set_model_transaction_policy({"x": 1})


def test_config_lookup_helpers():
    cfg = {"input": [{"name": "A"}], "output": [{"name": "B"}],
           "model_transaction_policy": {"decoupled": True}}
    assert pb_utils.get_input_config_by_name(cfg, "A") == {"name": "A"}
    assert pb_utils.get_output_config_by_name(cfg, "A") is None
    assert pb_utils.using_decoupled_model_transaction_policy(cfg) is True
    assert pb_utils.using_decoupled_model_transaction_policy({}) is False


def test_logger_goes_to_logging(caplog):
    with caplog.at_level(logging.DEBUG, logger="tritond.model"):
        pb_utils.Logger.log_info("hello")
        pb_utils.Logger.log("careful", pb_utils.Logger.WARNING)
        pb_utils.Logger.log_verbose("details")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "hello"), (logging.WARNING, "careful"), (logging.DEBUG, "details")]


def test_metrics_keep_values():
    fam = pb_utils.MetricFamily("requests_total", "count", pb_utils.MetricFamily.COUNTER)
    m = fam.Metric(labels={"k": "v"})
    m.increment(2)
    m.increment(3)
    assert m.value() == 5
    with pytest.raises(pb_utils.TritonModelException):
        m.increment(-1)
    with pytest.raises(pb_utils.TritonModelException):
        m.set(1)
    # Each family is held: a Metric dies with its MetricFamily (Triton's lifetime rule)
    gauges = pb_utils.MetricFamily("g", "gauge", pb_utils.MetricFamily.GAUGE)
    gauge = gauges.Metric()
    gauge.set(7)
    gauge.increment(-2)
    assert gauge.value() == 5
    hists = pb_utils.MetricFamily("h", "hist", pb_utils.MetricFamily.HISTOGRAM)
    hist = hists.Metric(buckets=[1, 10])
    for v in (0.5, 5, 50):
        hist.observe(v)
    assert (hist.count, hist.sum, hist.counts) == (3, 55.5, [1, 1, 1])


def test_response_sender_rules_are_tritons():
    FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
    sender = pb_utils.InferenceRequest().get_response_sender()
    with pytest.raises(pb_utils.TritonModelException) as err:
        sender.send(flags=FINAL)
    assert err.value.message() == ("Unable to send response. Non-decoupled model cannot send "
                                   "complete final before sending a response.")
    with pytest.raises(pb_utils.TritonModelException) as err:
        sender.send(pb_utils.InferenceResponse([]), flags=2)
    assert err.value.message() == "Unable to send response. Unsupported flag provided."
    with pytest.raises(pb_utils.TritonModelException) as err:
        sender.send()
    assert err.value.message() == ("Inference Response object must be provided when the "
                                   "response flags is set to zero.")
    decoupled = pb_utils.InferenceResponseSender(decoupled=True)
    got = []
    decoupled.attach(lambda r, final: got.append((r, final)))
    decoupled.send(pb_utils.InferenceResponse([]))
    decoupled.send(flags=FINAL)
    assert [final for _, final in got] == [False, True] and got[1][0] is None
    with pytest.raises(pb_utils.TritonModelException) as err:
        decoupled.send(pb_utils.InferenceResponse([]))
    assert err.value.message() == "Unable to send response. Response sender has been closed."


def test_a_send_of_something_else_than_a_response_is_a_type_error_that_changes_nothing():
    """python_backend's send is a pybind method taking an InferenceResponse (or None) and
    an int: anything else raises TypeError before the sender counts it, so the model can
    still send its final response. Here the worker's hub failed on it after the sender had
    closed: the request never got its final response."""
    FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
    sender = pb_utils.InferenceResponseSender(decoupled=True)
    got = []
    sender.attach(lambda r, final: got.append((r, final)))
    for response, flags in (("oops", FINAL), ({"OUT": 1}, 0), (None, 1.0)):
        with pytest.raises(TypeError, match=r"send\(\): incompatible function arguments[^\n]*\n    1\. \(self: c_python_backend_utils\.InferenceResponseSender"):
            sender.send(response, flags=flags)
    assert got == [] and not sender.closed and sender.sent == 0
    sender.send(pb_utils.InferenceResponse([]), flags=FINAL)
    assert [final for _, final in got] == [True]


def test_non_decoupled_sender_hands_over_its_one_response_at_the_final_flag():
    sender = pb_utils.InferenceResponseSender()
    got = []
    assert sender.attach(lambda r, final: got.append((r, final)))
    resp = pb_utils.InferenceResponse([])
    sender.send(resp)
    assert got == []
    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    assert got == [(resp, True)]
    closed = pb_utils.InferenceResponseSender()
    closed.send(resp, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    assert closed.attach(lambda *a: None, if_open=True) is False   # answered already


def test_from_dlpack_reads_the_device_of_a_bare_capsule():
    from tritond.workers.python import tensor
    x = np.arange(4, dtype=np.int64)
    assert tensor._capsule_device(x.__dlpack__()) == (1, 0)      # kDLCPU, device 0
    capsule = x.__dlpack__()
    pb_utils.Tensor.from_dlpack("once", capsule)
    with pytest.raises(pb_utils.TritonModelException, match="not consumed yet"):
        pb_utils.Tensor.from_dlpack("twice", capsule)             # a capsule is used up once


def test_cpu_tensor_is_cpu_and_converts_to_numpy():
    t = pb_utils.Tensor("x", np.zeros(3, np.float16))
    assert t.is_cpu() and t.as_numpy().dtype == np.float16
    assert "cpu" in repr(t)


def test_error_codes_print_as_python_backends_enum_and_equal_their_numbers():
    E = pb_utils.TritonError
    code = E("m", E.CANCELLED).code()
    assert str(code) == "__ErrorCode.CANCELLED" and code == 7 and code == E.CANCELLED
    assert str(E("m").code()) == "__ErrorCode.INTERNAL"


def test_the_module_names_the_imports_tritons_does():
    # Triton's triton_python_backend_utils imports json, struct and numpy as np at its
    # top, so model code written against it may reach them as pb_utils.<name>
    import json
    import struct

    import numpy
    assert (pb_utils.json, pb_utils.struct, pb_utils.np) == (json, struct, numpy)


@pytest.mark.parametrize("array", [np.array(["uni"]), np.array([1 + 2j]),
                                   np.zeros(2, dtype=[("a", "i4")])])
def test_an_unsupported_numpy_dtype_is_tritons_error(array):
    # python_backend's pb_stub_utils.cc text, for str_ and every dtype it has no type for
    with pytest.raises(pb_utils.TritonModelException, match=r"^NumPy dtype is not supported\.$"):
        pb_utils.Tensor("T", array)
