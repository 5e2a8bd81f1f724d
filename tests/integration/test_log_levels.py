"""--log-verbose/--log-info/--log-warning/--log-error and /v2/logging gate what every
tritond process logs (a worker's verbose line, the parent's info lines)."""
import re

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.server import REPO, Server

VERBOSE = "TRITONBACKEND_ModelInstanceExecute: instance simple_0_0"


def _infer(srv):
    a = np.zeros((1, 16), dtype=np.int32)
    ins = [httpclient.InferInput("INPUT0", [1, 16], "INT32"),
           httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    for i in ins:
        i.set_data_from_numpy(a)
    c = httpclient.InferenceServerClient(srv.url)
    c.infer("simple", ins)
    c.close()


def _count(log_path) -> int:
    return log_path.read_text().count(VERBOSE)


def test_logging_api_turns_a_workers_verbose_line_on_and_off(tmp_path):
    log = tmp_path / "t.log"
    srv = Server([REPO], f"--log-file={log}")
    try:
        _infer(srv)
        assert _count(log) == 0                       # --log-verbose=0
        h = httpclient.InferenceServerClient(srv.url)
        h.update_log_settings({"log_verbose_level": 1})
        _infer(srv)
        assert _count(log) == 1                       # the worker heard it (through the parent)
        g = grpcclient.InferenceServerClient(srv.grpc_url)
        g.update_log_settings({"log_verbose_level": 0})
        _infer(srv)
        assert _count(log) == 1
        h.close()
        g.close()
    finally:
        srv.stop()


def test_verbose_flag_and_info_switch_at_start(tmp_path):
    log = tmp_path / "v.log"
    srv = Server([REPO], f"--log-file={log}", "--log-verbose=1")
    _infer(srv)
    srv.stop()
    assert _count(log) == 1
    quiet = tmp_path / "q.log"
    srv = Server([REPO], f"--log-file={quiet}", "--log-info=false")
    _infer(srv)
    srv.stop()
    text = quiet.read_text()
    assert not re.search(r"^I\d{4} ", text, re.M), text[:500]     # no info line, any process
    assert "successfully loaded" not in text


def test_logging_api_switches_info_lines_off_everywhere(tmp_path):
    log = tmp_path / "i.log"
    srv = Server([REPO], f"--log-file={log}", "--log-verbose=1")
    try:
        h = httpclient.InferenceServerClient(srv.url)
        h.update_log_settings({"log_info": False, "log_verbose_level": 0})
        before = log.read_text()
        _infer(srv)
        srv.stop()                       # the parent and children log "shutting down" lines
        after = log.read_text()[len(before):]
        assert not re.search(r"^I\d{4} ", after, re.M), after[:500]
    finally:
        srv.kill()


def test_verbose_http_request_lines_and_the_exit_line_are_tritons(tmp_path):
    """Triton's HTTP server logs "HTTP request: <evhtp method> <path>" at --log-verbose=1,
    and its exit "Waiting for in-flight requests to complete." (QA L0_logging counts both)."""
    log = tmp_path / "h.log"
    srv = Server([REPO], f"--log-file={log}", "--log-verbose=1")
    try:
        h = httpclient.InferenceServerClient(srv.url)
        h.get_log_settings()
        _infer(srv)
        assert log.read_text().count("HTTP request: 0 /v2/logging") == 1       # GET
        assert "HTTP request: 2 /v2/models/simple/infer" in log.read_text()    # POST
        h.update_log_settings({"log_verbose_level": 0})     # logged: verbose was still 1
        h.get_log_settings()                                # not logged
        assert log.read_text().count("/v2/logging") == 2
        h.close()
    finally:
        srv.stop()
    assert log.read_text().count("Waiting for in-flight requests to complete.") == 1
