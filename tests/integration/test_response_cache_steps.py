"""The response cache answers ensemble steps and BLS calls (workers/cachelookup.py), as
Triton's does (qa/L0_response_cache test_ensemble_composing_model_cache_enabled): real
tritond, real tritonclient, Python composing and calling models."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.server import Server

# ``op`` (a config parameter) says what the model computes; each execution is logged.
OP_PY = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        self.op = params["op"]["string_value"]
        self.log = params["log_path"]["string_value"]

    def execute(self, requests):
        with open(self.log, "a") as f:
            f.write("exec\\n")
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            if self.op == "double":
                y = x * 2
            elif self.op == "inc":
                y = x + 1
            else:
                y = np.array([b"<" + bytes(v) + b">" for v in x.flat], dtype=object).reshape(x.shape)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", y)]))
        return out
'''

# ``caller`` calls ``double`` with BLS (decoupled=True when the request's parameter says so).
CALLER_PY = '''
import json
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X")
            call = pb_utils.InferenceRequest(
                model_name="double", requested_output_names=["OUTPUT0"],
                inputs=[pb_utils.Tensor("INPUT0", x.as_numpy())])
            if json.loads(r.parameters()).get("decoupled"):
                got = [g for g in call.exec(decoupled=True) if g.output_tensors()][0]
            else:
                got = call.exec()
            if got.has_error():
                raise pb_utils.TritonModelException(got.error().message())
            y = pb_utils.get_output_tensor_by_name(got, "OUTPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", y)]))
        return out
'''

OP_CONFIG = '''
name: "{name}"
backend: "python"
max_batch_size: {batch}
input [ {{ name: "INPUT0" data_type: {dtype} dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: {dtype} dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters {{ key: "op" value {{ string_value: "{op}" }} }}
parameters {{ key: "log_path" value {{ string_value: "{log}" }} }}
response_cache {{ enable: true }}
'''

ENSEMBLE = '''
name: "{name}"
platform: "ensemble"
max_batch_size: {batch}
input [ {{ name: "IN" data_type: {dtype} dims: [ -1 ] }} ]
output [ {{ name: "OUT" data_type: {dtype} dims: [ -1 ] }} ]
ensemble_scheduling {{ step [
  {{ model_name: "{first}" model_version: -1
    input_map {{ key: "INPUT0" value: "IN" }} output_map {{ key: "OUTPUT0" value: "MID" }} }},
  {{ model_name: "{second}" model_version: -1
    input_map {{ key: "INPUT0" value: "MID" }} output_map {{ key: "OUTPUT0" value: "OUT" }} }}
] }}
'''

CALLER_CONFIG = '''
name: "caller"
backend: "python"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ -1, -1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ -1, -1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
'''


def _model(repo, name: str, config: str, code: str | None = None) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(config)
    if code is not None:
        (repo / name / "1" / "model.py").write_text(code)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("stepcache")
    repo = root / "models"
    for name, op, batch, dtype in [("double", "double", 8, "TYPE_FP32"),
                                   ("inc", "inc", 8, "TYPE_FP32"),
                                   ("words", "bracket", 0, "TYPE_STRING")]:
        _model(repo, name, OP_CONFIG.format(name=name, op=op, batch=batch, dtype=dtype,
                                            log=root / f"{name}.log"), OP_PY)
    _model(repo, "pipe", ENSEMBLE.format(name="pipe", batch=8, dtype="TYPE_FP32",
                                         first="double", second="inc"))
    _model(repo, "shout", ENSEMBLE.format(name="shout", batch=0, dtype="TYPE_STRING",
                                          first="words", second="words"))
    _model(repo, "caller", CALLER_CONFIG, CALLER_PY)
    srv = Server([repo], "--cache-config=local,size=1048576", "--allow-client-shm=true")
    yield srv, root
    srv.stop()


def execs(root, name: str) -> int:
    path = root / f"{name}.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def stats(srv, name: str) -> dict:
    c = httpclient.InferenceServerClient(srv.url)
    try:
        return c.get_inference_statistics(name)["model_stats"][0]
    finally:
        c.close()


def infer(srv, model: str, name: str, x: np.ndarray, out: str, **kw) -> np.ndarray:
    c = httpclient.InferenceServerClient(srv.url)
    try:
        inp = httpclient.InferInput(name, list(x.shape), "BYTES" if x.dtype == object else "FP32")
        inp.set_data_from_numpy(x)
        return c.infer(model, [inp], **kw).as_numpy(out)
    finally:
        c.close()


def test_ensemble_steps_are_answered_from_their_models_cache(env):
    srv, root = env
    x = np.array([[1, 2, 3, 4]], np.float32)
    # the first test of the module: the statistics below are this test's only
    assert (execs(root, "double"), execs(root, "inc")) == (0, 0)
    first = infer(srv, "pipe", "IN", x, "OUT")
    again = infer(srv, "pipe", "IN", x, "OUT")
    np.testing.assert_array_equal(first, x * 2 + 1)
    assert first.tobytes() == again.tobytes()
    assert (execs(root, "double"), execs(root, "inc")) == (1, 1)
    for name in ("double", "inc"):      # as Triton 2.51 reports them (the oracle)
        s = stats(srv, name)
        inf = s["inference_stats"]
        assert (inf["cache_miss"]["count"], inf["cache_hit"]["count"]) == (1, 1), name
        assert (inf["success"]["count"], s["inference_count"], s["execution_count"]) == (2, 1, 1)
        assert inf["cache_hit"]["ns"] > 0 and inf["cache_miss"]["ns"] > 0
    ens = stats(srv, "pipe")["inference_stats"]     # the ensemble itself is not cached
    assert (ens["success"]["count"], ens["cache_hit"]["count"]) == (2, 0)


def test_bytes_steps_feeding_the_next_step_come_back_byte_for_byte(env):
    srv, root = env
    x = np.array(["é".encode(), b"", b"a\x00b", b"\xff\xfe"], dtype=object)
    ran, before = execs(root, "words"), stats(srv, "words")["inference_stats"]
    first = infer(srv, "shout", "IN", x, "OUT")
    again = infer(srv, "shout", "IN", x, "OUT")
    assert first.tolist() == again.tolist() == [b"<<" + v + b">>" for v in x]
    assert execs(root, "words") == ran + 2      # each step ran once (two keys), then hit
    inf = stats(srv, "words")["inference_stats"]
    assert inf["cache_miss"]["count"] - before["cache_miss"]["count"] == 2
    assert inf["cache_hit"]["count"] - before["cache_hit"]["count"] == 2


@pytest.mark.parametrize("decoupled", [False, True])
def test_bls_calls_are_answered_from_the_callees_cache(env, decoupled):
    srv, root = env
    x = np.array([[10, 20]], np.float32) + (100 if decoupled else 0)
    before, hits = execs(root, "double"), stats(srv, "double")["inference_stats"]["cache_hit"]
    params = {"decoupled": True} if decoupled else None
    first = infer(srv, "caller", "X", x, "Y", parameters=params)
    again = infer(srv, "caller", "X", x, "Y", parameters=params)
    np.testing.assert_array_equal(first, x * 2)
    assert first.tobytes() == again.tobytes()
    assert execs(root, "double") == before + 1
    assert stats(srv, "double")["inference_stats"]["cache_hit"]["count"] == hits["count"] + 1


def test_a_client_request_and_a_step_share_entries(env):
    srv, root = env
    x = np.array([[5, 6]], np.float32)
    infer(srv, "pipe", "IN", x, "OUT")              # the steps insert double(x), inc(2x)
    ran = execs(root, "double"), execs(root, "inc")
    np.testing.assert_array_equal(infer(srv, "double", "INPUT0", x, "OUTPUT0"), x * 2)
    np.testing.assert_array_equal(infer(srv, "inc", "INPUT0", x * 2, "OUTPUT0"), x * 2 + 1)
    assert (execs(root, "double"), execs(root, "inc")) == ran       # frontend hits
    y = np.array([[7, 8]], np.float32)
    infer(srv, "double", "INPUT0", y, "OUTPUT0")    # a frontend inserts double(y)
    np.testing.assert_array_equal(infer(srv, "pipe", "IN", y, "OUT"), y * 2 + 1)
    assert execs(root, "double") == ran[0] + 1      # the step hit it; inc ran
    assert execs(root, "inc") == ran[1] + 1


def test_client_shm_input_and_output_of_an_ensemble_whose_steps_hit(env):
    srv, root = env
    x = np.array([[30, 31, 32]], np.float32)
    name = f"stepcache_{uuid.uuid4().hex[:8]}"
    region = shm.create_shared_memory_region(name, f"/{name}", 64)
    ran = execs(root, "double"), execs(root, "inc")
    c = httpclient.InferenceServerClient(srv.url)
    try:
        shm.set_shared_memory_region(region, [x])
        c.register_system_shared_memory(name, f"/{name}", 64)
        outs = []
        for _ in range(2):
            inp = httpclient.InferInput("IN", [1, 3], "FP32")
            inp.set_shared_memory(name, 12)
            out = httpclient.InferRequestedOutput("OUT", binary_data=True)
            out.set_shared_memory(name, 12, offset=32)
            c.infer("pipe", [inp], outputs=[out])
            outs.append(shm.get_contents_as_numpy(region, np.float32, [1, 3], offset=32).copy())
            shm.set_shared_memory_region(region, [np.zeros((1, 3), np.float32)], offset=32)
        c.unregister_system_shared_memory(name)
    finally:
        c.close()
        shm.destroy_shared_memory_region(region)
    np.testing.assert_array_equal(outs[0], x * 2 + 1)
    np.testing.assert_array_equal(outs[1], x * 2 + 1)       # written by the hit
    # the first request ran each step once; the second's steps (inputs read from the
    # client's region) both hit, and its final step's hit wrote into the region
    assert (execs(root, "double"), execs(root, "inc")) == (ran[0] + 1, ran[1] + 1)


def test_a_step_answered_from_the_cache_is_traced_without_compute(env, tmp_path):
    # Triton's trace of a hit: REQUEST_START, QUEUE_START, REQUEST_END (no COMPUTE_*), here
    # as the step's child trace under the ensemble's.
    from tests.integration.test_trace_children import MODEL, TRACE_ON, _names, _read

    _, root = env
    path = tmp_path / "t.json"
    srv = Server([root / "models"], "--cache-config=local,size=1048576",
                 f"--trace-config=triton,file={path}", *TRACE_ON)
    try:
        x = np.array([[40, 41]], np.float32)
        for rid in ("miss", "hit"):
            c = httpclient.InferenceServerClient(srv.url)
            inp = httpclient.InferInput("IN", [1, 2], "FP32")
            inp.set_data_from_numpy(x)
            c.infer("pipe", [inp], request_id=rid)
            c.close()
    finally:
        assert srv.stop() == 0
    traces = _read(path).values()
    for rid, names in (("miss", MODEL), ("hit", ["REQUEST_START", "QUEUE_START", "REQUEST_END"])):
        top = next(t for t in traces if t["head"].get("request_id") == rid
                   and "parent_id" not in t["head"])
        steps = [t for t in traces if t["head"].get("parent_id") == top["head"]["id"]]
        assert [s["head"]["model_name"] for s in steps] == ["double", "inc"]
        assert [_names(s) for s in steps] == [names, names]


DECOUPLED_PY = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            r.get_response_sender().send(
                pb_utils.InferenceResponse([pb_utils.get_input_tensor_by_name(r, "INPUT0")]),
                flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''


def test_a_cached_ensemble_with_a_decoupled_step_fails_to_load(tmp_path):
    # qa/L0_response_cache ensemble_cache_composing_decoupled: the step makes the ensemble
    # decoupled, which Triton 2.51 then refuses to cache (checked with the oracle).
    repo = tmp_path / "models"
    _model(repo, "dec", OP_CONFIG.format(name="dec", op="", batch=0, dtype="TYPE_FP32", log="")
           .replace("response_cache { enable: true }",
                    "model_transaction_policy { decoupled: true }"), DECOUPLED_PY)
    _model(repo, "ens", ENSEMBLE.format(name="ens", batch=0, dtype="TYPE_FP32", first="dec",
                                        second="dec") + "response_cache { enable: true }\n")
    srv = Server([repo], "--cache-config=local,size=1048576", "--model-control-mode=explicit")
    c = httpclient.InferenceServerClient(srv.url)
    try:
        with pytest.raises(InferenceServerException, match="Response Cache does not currently "
                           "support model ens with 'decoupled' transaction policy"):
            c.load_model("ens")
        assert c.is_model_ready("dec") and not c.is_model_ready("ens")
    finally:
        c.close()
        srv.stop()
