"""State outputs in a decoupled Python model's streamed responses (issue 11), as Triton:
its Python backend never updates implicit state, and its response sender prunes each
response to the requested outputs (workers/python/decoupled_state.py). A real tritond
and the real tritonclient.

Each request gets two responses: OUT = the state input it saw, then (final) the next
state in STATE_OUT (with OUT = state + IN)."""
from __future__ import annotations

import pathlib
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

MODEL_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            state = pb_utils.get_input_tensor_by_name(request, "STATE_IN").as_numpy()
            sender = request.get_response_sender()
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", state.copy())]))
            nxt = (state + x).astype(np.int32)
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", nxt),
                                                    pb_utils.Tensor("STATE_OUT", nxt)]),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''

STATE_OUT = ', { name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ] }'


def _config(name: str, listed: bool) -> str:
    return f'''name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "IN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }}{STATE_OUT if listed else ""} ]
model_transaction_policy {{ decoupled: true }}
sequence_batching {{
  state [ {{ input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32
            dims: [ 1 ] initial_state {{ data_type: TYPE_INT32 dims: [ 1 ] name: "seven"
            data_file: "seven.bin" }} }} ]
}}
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    repo = tmp_path_factory.mktemp("dstate")
    for name, listed in (("decoupled_state", False), ("decoupled_state_listed", True)):
        d = repo / name
        (d / "1").mkdir(parents=True)
        (d / "1" / "model.py").write_text(MODEL_PY)
        (d / "config.pbtxt").write_text(_config(name, listed))
        (d / "initial_state").mkdir()
        (d / "initial_state" / "seven.bin").write_bytes(np.array([7], np.int32).tobytes())
    srv = Server([pathlib.Path(repo)])
    yield srv
    srv.stop()


def _run(srv, model, outputs=None):
    """One sequence of three requests (IN 1, 2, 3); each response's (OUT, STATE_OUT) or
    its error message."""
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    got: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    try:
        for i, x in enumerate((1, 2, 3)):
            inp = grpcclient.InferInput("IN", [1], "INT32")
            inp.set_data_from_numpy(np.array([x], np.int32))
            client.async_stream_infer(model, [inp], sequence_id=11, sequence_start=i == 0,
                                      sequence_end=i == 2, outputs=outputs)
        out = []
        for _ in range(6):
            result, error = got.get(timeout=30)
            if error is not None:
                assert isinstance(error, InferenceServerException)
                out.append(error.message())
                continue
            state = result.as_numpy("STATE_OUT")
            out.append((int(result.as_numpy("OUT")[0]),
                        None if state is None else int(state[0])))
        return out
    finally:
        client.stop_stream()
        client.close()


def test_a_state_output_in_a_decoupled_response_is_dropped_and_keeps_no_state(served):
    # every step sees the initial state (7): no response updated it
    assert _run(served, "decoupled_state") == [(7, None), (8, None), (7, None), (9, None),
                                               (7, None), (10, None)]


def test_a_state_output_listed_as_an_output_is_sent_if_requested_and_keeps_no_state(served):
    both = [grpcclient.InferRequestedOutput(n) for n in ("OUT", "STATE_OUT")]
    sent = [(7, None), (8, 8), (7, None), (9, 9), (7, None), (10, 10)]
    assert _run(served, "decoupled_state_listed", both) == sent
    assert _run(served, "decoupled_state_listed") == sent      # none named: every output
    only = [grpcclient.InferRequestedOutput("OUT")]
    assert _run(served, "decoupled_state_listed", only) == [
        (7, None), (8, None), (7, None), (9, None), (7, None), (10, None)]
