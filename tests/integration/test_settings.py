"""Logging and trace settings extensions over HTTP and gRPC, real tritond."""
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import json_format
from tritonclient.utils import InferenceServerException

LOG_KEYS = {"log_file", "log_info", "log_warning", "log_error", "log_verbose_level", "log_format"}
TRACE_KEYS = {"trace_level", "trace_rate", "trace_count", "log_frequency", "trace_file",
              "trace_mode"}


@pytest.fixture(scope="module")
def http(server):
    c = httpclient.InferenceServerClient(server.url)
    yield c
    c.update_log_settings({"log_verbose_level": 0})     # the session server is shared
    c.update_trace_settings(settings={"trace_rate": "1000"})
    c.close()


@pytest.fixture(scope="module")
def grpc(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


def _grpc_dict(msg):
    out = {}
    for key, value in json_format.MessageToDict(msg)["settings"].items():
        out[key] = next(iter(value.values())) if isinstance(value, dict) else value
    return out


def test_log_settings_http(http):
    got = http.get_log_settings()
    assert set(got) == LOG_KEYS and got["log_warning"] is True
    assert got["log_format"] == "default" and got["log_verbose_level"] == 0
    assert http.update_log_settings({"log_verbose_level": 2})["log_verbose_level"] == 2
    assert http.get_log_settings()["log_verbose_level"] == 2
    http.update_log_settings({"log_verbose_level": 0})


# Triton's HTTP answers (http_server.cc HandleLogging; a value of the wrong JSON type is
# triton_json's INTERNAL error); QA L0_logging sends these.
@pytest.mark.parametrize("update,status,message", [
    ({"log_file": "/tmp/x"}, "501", "log file location can not be updated through network "
                                    "protocol"),
    ({"log_info": 1}, "500", "attempt to access JSON non-boolean as boolean"),
    ({"log_warning": "false"}, "500", "attempt to access JSON non-boolean as boolean"),
    ({"log_verbose_level": -1}, "500",
     "attempt to access JSON non-unsigned-integer as unsigned-integer"),
    ({"log_verbose_level": "1"}, "500",
     "attempt to access JSON non-unsigned-integer as unsigned-integer"),
    ({"log_format": 1}, "500", "attempt to access JSON non-string as string"),
    ({"log_format": "yaml"}, "503", "invalid argument for --log_format, got: yaml")])
def test_log_settings_errors_http(http, update, status, message):
    with pytest.raises(InferenceServerException) as exc:
        http.update_log_settings(update)
    assert (exc.value.status(), exc.value.message()) == (status, message)


def test_log_settings_ignore_nulls_and_unknown_keys_http(http):
    """Triton's HandleLogging reads the keys it knows and skips a null."""
    before = http.get_log_settings()
    assert http.update_log_settings({"bogus": True, "log_info": None, "log_file": None}) == before


@pytest.mark.parametrize("update,message", [
    ({"log_file": "x"}, "log file location can not be updated through network protocol"),
    ({"log_file": None}, "log file location can not be updated through network protocol"),
    ({"log_info": None}, "expect boolean for 'log_info'"),
    ({"log_verbose_level": None}, "expect int32 for 'log_verbose_level'"),
    ({"log_format": None}, "expect string for 'log_format'"),
    ({"log_format": "yaml"}, "invalid argument for log_format, got: yaml")])
def test_log_settings_errors_grpc(grpc, update, message):
    """Triton's gRPC LogSettings checks each value's kind (grpc_server.cc)."""
    with pytest.raises(InferenceServerException) as exc:
        grpc.update_log_settings(update)
    code = "StatusCode.UNIMPLEMENTED" if "log_file" in update else "StatusCode.INVALID_ARGUMENT"
    assert (exc.value.status(), exc.value.message()) == (code, message)


def test_log_settings_grpc(grpc):
    got = _grpc_dict(grpc.get_log_settings())
    assert set(got) == LOG_KEYS
    upd = _grpc_dict(grpc.update_log_settings({"log_verbose_level": 1, "log_info": False}))
    assert int(upd["log_verbose_level"]) == 1 and upd["log_info"] is False
    grpc.update_log_settings({"log_verbose_level": 0, "log_info": True})


def test_trace_settings_http(http):
    got = http.get_trace_settings()
    assert set(got) == TRACE_KEYS and got["trace_level"] == ["OFF"]
    assert all(isinstance(got[k], str) for k in TRACE_KEYS - {"trace_level"})
    upd = http.update_trace_settings(settings={"trace_rate": "7", "trace_level": ["TIMESTAMPS"]})
    assert upd["trace_rate"] == "7" and upd["trace_level"] == ["TIMESTAMPS"]
    model = http.update_trace_settings("simple", {"trace_count": "3"})
    assert model["trace_count"] == "3" and model["trace_rate"] == "7"
    cleared = http.update_trace_settings("simple", {"trace_count": None})
    assert cleared["trace_count"] == got["trace_count"]
    http.update_trace_settings(settings={"trace_rate": "1000", "trace_level": ["OFF"]})


# Triton's HTTP answers (http_server.cc HandleTrace).
@pytest.mark.parametrize("update,status,message", [
    ({"trace_rate": 5}, "500", "attempt to access JSON non-string as string"),
    ({"trace_file": "/tmp/t"}, "501", "trace file location can not be updated through "
                                      "network protocol"),
    ({"trace_file": None}, "501", "trace file location can not be updated through "
                                  "network protocol"),
    ({"trace_count": "-2"}, "400", "Unable to parse 'trace_count'. Expecting value >= -1, "
                                   "got:-2"),
    ({"trace_rate": "abc"}, "400", "Unable to parse 'trace_rate', got: abc"),
    ({"trace_level": ["OFF", "TIMESTAMPS"]}, "400",
     "Expect only one trace level 'OFF' is specified"),
    ({"trace_level": "TIMESTAMPS"}, "500", "attempt to access JSON non-array as array")])
def test_trace_settings_errors_http(http, update, status, message):
    with pytest.raises(InferenceServerException) as exc:
        http.update_trace_settings(settings=update)
    assert (exc.value.status(), exc.value.message()) == (status, message)


def test_trace_settings_as_triton_reads_them_http(http, grpc):
    """Unknown keys, trace_mode and unknown levels are passed over; numbers are read as
    std::stoi reads them (the number at the front)."""
    before = http.get_trace_settings()
    assert http.update_trace_settings(settings={"bogus": "1", "trace_mode": "opentelemetry",
                                                "trace_level": ["LOUD"]}) == before
    try:
        assert http.update_trace_settings(settings={"trace_rate": "12abc"})["trace_rate"] == "12"
        with pytest.raises(InferenceServerException) as exc:
            grpc.update_trace_settings(settings={"trace_count": "-2"})
        assert exc.value.message() == ("Unable to parse 'trace_count'. Expecting value >= -1, "
                                       "got: -2")
    finally:
        http.update_trace_settings(settings={"trace_rate": None})


def test_trace_settings_unknown_model(http, grpc):
    with pytest.raises(InferenceServerException) as exc:
        http.get_trace_settings("nope")
    assert exc.value.status() == "400"
    with pytest.raises(InferenceServerException) as exc:
        grpc.get_trace_settings("nope")
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_trace_settings_grpc(grpc):
    got = json_format.MessageToDict(grpc.get_trace_settings())["settings"]
    assert set(got) == TRACE_KEYS
    assert got["trace_level"]["value"] == ["OFF"]
    upd = json_format.MessageToDict(grpc.update_trace_settings(settings={"trace_rate": "9"}))
    assert upd["settings"]["trace_rate"]["value"] == ["9"]
    grpc.update_trace_settings(settings={"trace_rate": "1000"})


@pytest.mark.parametrize("via", ["http", "grpc"])
def test_clearing_a_global_trace_setting_restores_its_start_value(http, grpc, via):
    """Triton's TraceManager: a null clears a global setting back to its value at start
    (global_default_), and a model's override falls back to the global one (QA L0_trace
    trace_endpoint_test test_*_clear_settings)."""
    start = http.get_trace_settings()
    http.update_trace_settings("simple", {"trace_rate": "12", "log_frequency": "34"})
    http.update_trace_settings(settings={"trace_rate": "56", "trace_count": "78",
                                         "trace_level": ["OFF"]})
    try:
        if via == "http":
            glob = http.update_trace_settings(settings={"trace_rate": None, "trace_count": None})
        else:
            glob = {k: v if k == "trace_level" else v[0] for k, v in _grpc_dict(
                grpc.update_trace_settings(settings={"trace_rate": None,
                                                     "trace_count": None})).items()}
        assert glob == {**start, "trace_level": ["OFF"]}
        model = http.get_trace_settings("simple")
        assert (model["trace_rate"], model["log_frequency"]) == ("12", "34")
        assert model["trace_count"] == start["trace_count"]
        model = http.update_trace_settings("simple", {"trace_rate": None, "trace_level": None})
        assert model == {**start, "trace_level": ["OFF"], "log_frequency": "34"}
    finally:
        http.update_trace_settings("simple", {"log_frequency": None})
        http.update_trace_settings(settings={k: None for k in ("trace_rate", "trace_count",
                                                               "trace_level")})
    assert http.get_trace_settings() == start
