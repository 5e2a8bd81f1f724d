"""The start-up line says "ready" exactly when the health endpoint does."""
import logging

from tritond.options import Options
from tritond.parent.models import READY, UNAVAILABLE, UNLOADED, ModelVersion, Registry
from tritond.parent.readiness import startup_line
from tritond.parent.startup import describe
from tritond.errors import invalid_arg

OPTS = Options(http_address="127.0.0.1", http_port=8000, grpc_address="127.0.0.1",
               grpc_port=8001, metrics_address="127.0.0.1", metrics_port=8002)


def test_ready_names_the_endpoints():
    assert startup_line(OPTS, Registry(), ready=True, applied=True) == (
        logging.INFO, "tritond ready: HTTP 127.0.0.1:8000, gRPC 127.0.0.1:8001, "
                      "metrics 127.0.0.1:8002")
    no_grpc = Options(http_address="127.0.0.1", http_port=8000, allow_grpc=False,
                      allow_metrics=False)
    assert startup_line(no_grpc, Registry(), True, True)[1] == "tritond ready: HTTP 127.0.0.1:8000"


def test_not_ready_says_which_models_and_why():
    reg = Registry(failed={"nope": "model 'nope' not found in any model repository"})
    bad = reg.versions[("bad", 1)] = ModelVersion("bad", 1, "/r/bad", "/r")
    bad.state, bad.reason = UNAVAILABLE, "model.onnx is missing"
    gone = reg.versions[("gone", 1)] = ModelVersion("gone", 1, "/r/gone", "/r")
    gone.state, gone.reason = UNAVAILABLE, UNLOADED         # unloaded on purpose: not a reason
    ok = reg.versions[("ok", 1)] = ModelVersion("ok", 1, "/r/ok", "/r")
    ok.state = READY                                        # no live instance
    level, text = startup_line(OPTS, reg, ready=False, applied=True)
    assert level == logging.WARNING and "tritond ready" not in text
    assert text.startswith("tritond is serving (HTTP 127.0.0.1:8000, ") and "NOT ready" in text
    assert ("'nope' (model 'nope' not found in any model repository); 'bad' version 1 "
            "(UNAVAILABLE: model.onnx is missing); 'ok' version 1 (READY: no live instance)") in text
    assert "gone" not in text and "--strict-readiness=false" in text


def test_unconfirmed_table_is_not_ready():
    level, text = startup_line(OPTS, Registry(), ready=True, applied=False)
    assert level == logging.WARNING and "not confirmed" in text and "tritond ready" not in text


def test_start_up_failures_are_sentences_not_reprs():
    assert describe(invalid_arg("failed to open model repository '/x': No such file")) == \
        "failed to open model repository '/x': No such file"
    assert describe(KeyError("k")) == "KeyError: 'k'"
    assert describe(TimeoutError()) == "TimeoutError"
