"""A non-decoupled model mixing returned responses and response senders, as python_backend
answers it (QA ``response_sender``): a response sent during ``execute`` is the request's
answer whatever ``execute`` then returns or raises; None in the returned list is a request
answered through its sender; a second response for one request fails the batch."""
from __future__ import annotations

import numpy as np

from tritond.errors import Code

from . import models
from .helpers import work
from .test_workers_python_backend import loaded

MIXED = '''
import numpy as np
import triton_python_backend_utils as pb_utils

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def answer(value):
    return pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([value], np.int32))])


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            mode = int(pb_utils.get_input_tensor_by_name(request, "MODE").as_numpy()[0])
            sender = request.get_response_sender()
            if mode == 0:                      # returned
                out.append(answer(0))
            elif mode == 1:                    # sent, then None in the list
                sender.send(answer(1), flags=FINAL)
                out.append(None)
            elif mode == 2:                    # sent twice: the second send raises
                sender.send(answer(2))
                sender.send(answer(22))
            elif mode == 3:                    # sent and final, then also returned
                sender.send(answer(3), flags=FINAL)
                out.append(answer(33))
        return out
'''
CONFIG = {"name": "mixed", "backend": "python", "max_batch_size": 0,
          "input": [{"name": "MODE", "data_type": "TYPE_INT32", "dims": [1]}],
          "output": [{"name": "OUT", "data_type": "TYPE_INT32", "dims": [1]}]}


def run(repo, *modes):
    be = loaded(models.python_model(repo, "mixed", MIXED), CONFIG)
    try:
        return be.execute([work({"MODE": np.array([m], np.int32)}, ["OUT"], rid=i)
                           for i, m in enumerate(modes)])
    finally:
        be.unload()


def value(result):
    assert result.error is None, result.error
    return int(result.outputs["OUT"][0])


def test_returned_and_sent_responses_share_a_batch(repo):
    assert [value(r) for r in run(repo, 0, 1, 0)] == [0, 1, 0]


def test_a_sent_response_outlives_a_later_exception(repo):
    first, other = run(repo, 2, 0)
    assert value(first) == 2
    assert other.error.code == Code.INTERNAL
    assert "Non-decoupled model cannot send more than one response." in other.error.message


def test_returning_a_second_response_fails_the_others(repo):
    sent, other = run(repo, 3, 0)
    assert value(sent) == 3
    assert other.error.message == (
        "Failed to process the request(s) for model 'mixed_0_0', message: Unable to send "
        "response. Non-decoupled model cannot send more than one response.")
