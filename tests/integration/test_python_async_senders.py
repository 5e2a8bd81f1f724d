"""A non-decoupled ``async def execute`` may start a task that answers after it returned
(python_backend runs models' coroutines on one loop that keeps running: QA
``response_sender``, model ``response_sender_async``). Before, the loop stopped with
``execute`` and the request waited for good."""
from __future__ import annotations

import numpy as np
import tritonclient.http as httpclient

from tests.server import Server

MODEL = '''
import asyncio
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.tasks = set()

    async def execute(self, requests):
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            task = asyncio.create_task(self.later(request.get_response_sender(), x))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return None

    async def later(self, sender, x):
        await asyncio.sleep(0.05)
        sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x + 1)]),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
'''
CONFIG = ('name: "late"\nbackend: "python"\n'
          'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
          'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 1 } ]\n')


def test_a_task_started_by_async_execute_answers_after_it_returned(tmp_path):
    (tmp_path / "late" / "1").mkdir(parents=True)
    (tmp_path / "late" / "1" / "model.py").write_text(MODEL)
    (tmp_path / "late" / "config.pbtxt").write_text(CONFIG)
    srv = Server([tmp_path])
    try:
        client = httpclient.InferenceServerClient(srv.url, network_timeout=30)
        for value in (1.0, 5.0):
            inp = httpclient.InferInput("IN", [2], "FP32")
            inp.set_data_from_numpy(np.full(2, value, np.float32))
            out = client.infer("late", [inp]).as_numpy("OUT")
            np.testing.assert_array_equal(out, np.full(2, value + 1, np.float32))
    finally:
        srv.stop()
