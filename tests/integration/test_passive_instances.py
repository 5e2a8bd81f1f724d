"""``instance_group { passive: true }`` (Triton's L0_passive_instance): a passive instance
is started and initialized but the scheduler never sends it a request; the config shows
the group as written. A model whose every instance is passive loads READY and refuses
each request with an error (Triton 2.51 crashes there: its rate limiter has no queue for
a model without an active instance)."""
from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.server import Server

# Writes a file named after its instance when initialized (the passive ones too) and
# answers with that name, so a test sees which instances loaded and which executed.
MODEL = '''
import json
import os
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.name = args["model_instance_name"]
        seen = json.loads(args["model_config"])["parameters"]["SEEN"]["string_value"]
        open(os.path.join(seen, self.name), "w").close()

    def execute(self, requests):
        out = pb_utils.Tensor("OUT", np.array([self.name.encode()], dtype=np.object_))
        return [pb_utils.InferenceResponse([out]) for _ in requests]
'''


def _model(repo, seen, name: str, groups: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(MODEL)
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "python"\n'
        'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_STRING dims: [ 1 ] } ]\n'
        f'instance_group [ {groups} ]\n'
        f'parameters {{ key: "SEEN" value: {{ string_value: "{seen}" }} }}\n')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    repo = tmp_path_factory.mktemp("passive")
    seen = tmp_path_factory.mktemp("seen")
    _model(repo, seen, "mixed", '{ kind: KIND_CPU count: 1 }, '
                                '{ name: "pas" kind: KIND_CPU count: 2 passive: true }')
    _model(repo, seen, "all_passive", '{ kind: KIND_CPU count: 1 passive: true }')
    srv = Server([repo])
    yield srv, seen
    srv.stop()


def _inputs(module):
    inp = module.InferInput("IN", [1], "INT32")
    inp.set_data_from_numpy(np.array([1], np.int32))
    return [inp]


def test_passive_instances_load_but_never_execute(served):
    srv, seen = served
    http = httpclient.InferenceServerClient(srv.url, concurrency=4)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    # every instance was initialized, the passive ones too
    assert {"mixed_0_0", "pas_0", "pas_1"} <= {p.name for p in seen.iterdir()}
    assert http.is_model_ready("mixed") and grpc.is_model_ready("mixed")
    pending = [http.async_infer("mixed", _inputs(httpclient)) for _ in range(12)]
    names = {r.get_result().as_numpy("OUT")[0] for r in pending}
    names |= {grpc.infer("mixed", _inputs(grpcclient)).as_numpy("OUT")[0] for _ in range(4)}
    assert names == {b"mixed_0_0"}
    stats = http.get_inference_statistics("mixed")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == 16
    http.close()


def test_passive_groups_show_in_the_config(served):
    srv, _ = served
    groups = httpclient.InferenceServerClient(srv.url).get_model_config("mixed")["instance_group"]
    assert [(g["name"], g["count"], g["passive"]) for g in groups] == [
        ("mixed_0", 1, False), ("pas", 2, True)]
    grpc_groups = grpcclient.InferenceServerClient(srv.grpc_url).get_model_config(
        "mixed").config.instance_group
    assert [g.passive for g in grpc_groups] == [False, True]


def test_a_model_with_only_passive_instances_refuses_requests(served):
    srv, seen = served
    http = httpclient.InferenceServerClient(srv.url)
    grpc = grpcclient.InferenceServerClient(srv.grpc_url)
    assert (seen / "all_passive_0_0").exists()
    assert http.is_model_ready("all_passive") and grpc.is_model_ready("all_passive")
    for client, module in ((http, httpclient), (grpc, grpcclient)):
        with pytest.raises(InferenceServerException, match="every instance of model "
                           "'all_passive' is passive") as err:
            client.infer("all_passive", _inputs(module))
        assert err.value.status() in ("500", "StatusCode.INTERNAL")
    # the server keeps going
    assert grpc.infer("mixed", _inputs(grpcclient)).as_numpy("OUT")[0] == b"mixed_0_0"
