"""python_backend's request-rescheduling rules in the Python backend, in-process
(workers/python/reschedule.py); through a server: tests/integration/test_iterative_sequences.py."""
from __future__ import annotations

import numpy as np

from tritond.errors import Code
from tritond.workers.python.backend import PythonBackend

from tests.specs import spec_from_dict

from . import models
from .helpers import context, work

MODEL = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            response = pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x)])
            if int(x.flat[0]) > 0:            # >0: reschedule (2: and answer it anyway)
                request.set_release_flags(pb_utils.TRITONSERVER_REQUEST_RELEASE_RESCHEDULE)
                out.append(response if int(x.flat[0]) == 2 else None)
            else:
                out.append(response)
        return out
'''


def _backend(repo, iterative: bool) -> PythonBackend:
    model = models.python_model(repo, "resched", MODEL)
    config = {"name": "resched", "backend": "python", "max_batch_size": 0,
              "input": [{"name": "IN", "data_type": "TYPE_INT32", "dims": [1]}],
              "output": [{"name": "OUT", "data_type": "TYPE_INT32", "dims": [1]}]}
    if iterative:
        config["sequence_batching"] = {"iterative_sequence": True}
    be = PythonBackend(context(model))
    be.load(spec_from_dict(config))
    return be


def _run(be, *values):
    return be.execute([work({"IN": np.array([v], np.int32)}, ["OUT"], rid=i + 1)
                       for i, v in enumerate(values)])


def test_an_iterative_model_reschedules_with_none_in_its_list(repo):
    be = _backend(repo, iterative=True)
    done, again = _run(be, 0, 1)
    assert done.outputs["OUT"].tolist() == [0] and not done.rescheduled
    assert again.rescheduled and again.streamed and again.error is None


def test_a_response_for_a_rescheduled_request_fails_the_batch(repo):
    be = _backend(repo, iterative=True)
    results = _run(be, 0, 2)
    assert all(r.error is not None and not r.rescheduled for r in results)
    assert "Expected a None object in the execute function return list for reschduled " \
        "request, found type" in results[0].error.message


def test_a_model_without_iterative_sequence_gets_tritons_error(repo):
    be = _backend(repo, iterative=False)
    done, refused = _run(be, 0, 1)
    assert done.error is None
    assert refused.error.code == Code.INVALID_ARG and not refused.rescheduled
    assert refused.error.message == (
        "Request is released with TRITONSERVER_REQUEST_RELEASE_RESCHEDULE, while the model "
        "is not configured to handle such a flag.")
