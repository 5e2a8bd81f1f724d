"""Every tritond log line has Triton's shape, and its message is escaped (Triton's
TRITON_SERVER_ESCAPE_LOG_MESSAGES, on unless it is 0): a newline in a model's
``pb_utils.Logger`` text, a model's load error or a request's path cannot forge a line."""
import re
import socket
import textwrap

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import Server

FORGED = "a\nI1130 forged] x \"q\""
DEFAULT = re.compile(r'^(?P<level>[IWE])\d{4} \d\d:\d\d:\d\d\.\d{6} (?P<pid>\d+) '
                     r'(?P<file>[\w.]+):(?P<line>\d+)\] (?P<message>".*")?$')
ISO8601 = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?P<level>[IWE]) (?P<pid>\d+) '
                     r'(?P<file>[\w.]+):(?P<line>\d+)\] (?P<message>".*")$')
MODEL = textwrap.dedent('''\
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            out = []
            for r in requests:
                text = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()[0].decode()
                pb_utils.Logger.log_info(text)  # line 10
                pb_utils.Logger.log_warn(text)  # line 11
                pb_utils.Logger.log_error(text)  # line 12
                pb_utils.Logger.log_verbose(text)  # line 13
                pb_utils.Logger.log(text, pb_utils.Logger.INFO)  # line 14
                out.append(pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUT", np.array([text.encode()], dtype=object))]))
            return out
    ''')
BAD = 'class TritonPythonModel:\n    def initialize(self, args):\n' \
      '        raise ValueError("bad\\nI1130 forged-load] y")\n'
CONFIG = '''name: "{}" backend: "python" max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_STRING dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_STRING dims: [ 1 ] }} ]
'''


def _repo(root):
    for name, source in (("logger", MODEL), ("badload", BAD)):
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CONFIG.format(name))
        (root / name / "1" / "model.py").write_text(source)
    return root


def _log_forged(srv, model="logger"):
    c = httpclient.InferenceServerClient(srv.url)
    i = httpclient.InferInput("IN", [1], "BYTES")
    i.set_data_from_numpy(np.array([FORGED.encode()], dtype=object))
    try:
        return c.infer(model, [i])
    finally:
        c.close()


@pytest.fixture(scope="module")
def escaped(tmp_path_factory):
    srv = Server([_repo(tmp_path_factory.mktemp("loglines"))], "--log-verbose=1",
                 "--strict-readiness=false")
    try:
        _log_forged(srv)
        with socket.create_connection(("127.0.0.1", srv.http_port)) as raw:
            raw.sendall(b"NOT HTTP\r\n\r\n")    # uvicorn's own warning, in our lines too
            raw.recv(1024)
        c = httpclient.InferenceServerClient(srv.url)
        with pytest.raises(Exception, match="unknown model"):
            c.get_model_metadata("nosuch\nI1130 forged-name] z")
        assert c.update_log_settings({"log_format": "ISO8601"})["log_format"] == "ISO8601"
        _log_forged(srv)        # every process writes the new shape, the worker too
        c.close()
    finally:
        srv.stop()
    yield srv.output()


def test_no_line_is_forged_and_every_line_has_tritons_shape(escaped):
    lines = escaped.splitlines()
    assert not [line for line in lines if line.startswith("I1130 forged")]
    assert [line for line in lines if "forged" in line]     # they were logged
    assert [line for line in lines if re.match(r'W.*\] "Invalid HTTP request received\."$', line)]
    # Only the start-up model table (+/| lines after a line with no message) is raw.
    assert [line for line in lines if line and line[0] not in "+|"
            and not DEFAULT.match(line) and not ISO8601.match(line)] == []


def test_a_models_log_lines_name_its_model_py_line(escaped):
    got = [(m["level"], m["file"], m["line"]) for m in map(DEFAULT.match, escaped.splitlines())
           if m and m["message"] == r'"a\nI1130 forged] x \"q\""']
    assert got == [("I", "model.py", "10"), ("W", "model.py", "11"), ("E", "model.py", "12"),
                   ("I", "model.py", "13"), ("I", "model.py", "14")]


def test_the_logging_api_changes_the_format_of_every_process(escaped):
    switch = escaped.index("HTTP request: 2 /v2/logging")
    after = escaped[switch:].splitlines()[1:]
    assert after and [line for line in after if not ISO8601.match(line)] == []
    got = [(m["level"], m["line"]) for m in map(ISO8601.match, after)
           if m and m["file"] == "model.py"]
    assert got == [("I", "10"), ("W", "11"), ("E", "12"), ("I", "13"), ("I", "14")]
    assert {"fastpath.py", "runner.py", "signals.py", "supervisor.py", "proc.py"} <= \
        {ISO8601.match(line)["file"] for line in after}


def test_a_load_error_is_escaped_and_a_request_path_is_as_sent(escaped):
    assert re.search(r'^E\d{4} .*\] "failed to load \'badload\'.*bad\\nI1130 forged-load\] y',
                     escaped, re.M)
    # As Triton, the path as sent: percent-encoded.
    assert re.search(r'^I\d{4} .*\] "HTTP request: 0 /v2/models/nosuch%0AI1130%20forged-name%5D%20z"$',
                     escaped, re.M)


def test_escaping_off_writes_messages_as_they_are_to_the_log_file(tmp_path_factory):
    log = tmp_path_factory.mktemp("raw") / "raw.log"
    srv = Server([_repo(tmp_path_factory.mktemp("loglines_raw"))], f"--log-file={log}",
                 "--strict-readiness=false", env={"TRITON_SERVER_ESCAPE_LOG_MESSAGES": "0"})
    try:
        _log_forged(srv)
    finally:
        srv.stop()
    text = log.read_text()
    assert re.search(r'^I\d{4} [\d:.]+ \d+ model\.py:10\] a$\n^I1130 forged\] x "q"$', text, re.M)
    assert "forged" not in srv.output()           # the file has it all
