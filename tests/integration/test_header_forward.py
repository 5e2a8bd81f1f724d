"""--http-header-forward-pattern / --grpc-header-forward-pattern: headers -> request parameters."""
import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

PARAMS = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT0", np.array([r.parameters().encode()], dtype=object))]) for r in requests]
'''
CONFIG = ('name: "params"\nbackend: "python"\n'
          'input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
          'output [ { name: "OUT0" data_type: TYPE_STRING dims: [ 1 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 1 } ]\n')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    (repo / "params" / "1").mkdir(parents=True)
    (repo / "params" / "1" / "model.py").write_text(PARAMS)
    (repo / "params" / "config.pbtxt").write_text(CONFIG)
    srv = Server([repo], "--http-header-forward-pattern=^x-fwd-|^timeout$",
                 "--grpc-header-forward-pattern=fwd")
    yield srv
    srv.stop()


def params_seen(module, url, headers):
    c = module.InferenceServerClient(url)
    inp = module.InferInput("IN0", [1], "FP32")
    inp.set_data_from_numpy(np.zeros(1, np.float32))
    out = c.infer("params", [inp], headers=headers).as_numpy("OUT0")[0]
    return json.loads(out)


def test_http_headers_matching_become_parameters(server):
    got = params_seen(httpclient, server.url, {"X-Fwd-User": "alice", "X-Other": "no"})
    assert got == {"x-fwd-user": "alice"}


def test_grpc_metadata_matching_become_parameters(server):
    got = params_seen(grpcclient, server.grpc_url, {"my-fwd-key": "v1", "other": "no"})
    assert got == {"my-fwd-key": "v1"}


def test_reserved_header_is_refused(server):
    with pytest.raises(InferenceServerException) as exc:
        params_seen(httpclient, server.url, {"timeout": "5"})
    assert exc.value.message() == ("Header 'timeout' is reserved for Triton usage and cannot "
                                   "be forwarded.")
    assert exc.value.status() == "400"


def test_partial_match_and_the_triton_prefix():
    from tritond.frontend.forward import forward
    params = {}
    forward("fwd", [("a-fwd", "1"), ("b", "2")], params)
    assert params == {"a-fwd": "1"}
    with pytest.raises(Exception, match="'triton_x' is reserved"):
        forward("x", [("triton_x", "1")], {})


def test_patterns_are_case_insensitive_unless_they_start_with_minus_i():
    """QA L0_parameters test_headers / test_grpc_header_forward_pattern_case_sensitive: Triton
    compiles the pattern as "(?i)" + pattern (RE2), so "MY_HEADER.*" forwards the lower-cased
    "my_header_1" and "(?-i)MY_HEADER.*" (which Python's re refuses as written) does not."""
    from tritond.frontend.forward import forward
    from tritond.options import regex
    pairs = [("my_header_1", "a"), ("MY_HEADER_2", "b"), ("header_1", "c")]
    params = {}
    forward("MY_HEADER.*", pairs, params)
    assert params == {"my_header_1": "a", "MY_HEADER_2": "b"}
    params = {}
    forward(regex("(?-i)MY_HEADER.*"), pairs, params)      # the option accepts it
    assert params == {"MY_HEADER_2": "b"}
