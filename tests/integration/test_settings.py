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


@pytest.mark.parametrize("update,status", [
    ({"log_file": "/tmp/x"}, "501"), ({"log_info": 1}, "400"), ({"log_verbose_level": -1}, "400"),
    ({"log_format": "yaml"}, "503"), ({"bogus": True}, "400")])
def test_log_settings_errors_http(http, update, status):
    with pytest.raises(InferenceServerException) as exc:
        http.update_log_settings(update)
    assert exc.value.status() == status


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


@pytest.mark.parametrize("update,status", [
    ({"trace_rate": 5}, "400"), ({"trace_file": "/tmp/t"}, "501"),
    ({"trace_count": "-2"}, "400"), ({"trace_level": ["LOUD"]}, "400")])
def test_trace_settings_errors_http(http, update, status):
    with pytest.raises(InferenceServerException) as exc:
        http.update_trace_settings(settings=update)
    assert exc.value.status() == status


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
