"""Client shared memory end to end (issue 3): real tritond, real tritonclient, real POSIX shm.

The repository holds ``identity_fp32`` (ONNX) plus two Python models that
report, as an output, which mapping of the worker holds their input
(``/proc/self/maps``): that is how the zero-copy claim is checked from outside.
"""
from __future__ import annotations

import base64
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.server import REPO, Server

PROBE_PY = '''
import json, time
import numpy as np
import triton_python_backend_utils as pb_utils


def mapping_of(addr):
    """The file backing the mapping that contains ``addr`` in this process."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if lo <= addr < hi:
                return parts[5] if len(parts) > 5 else ""
    return ""


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        self.sleep = float(params.get("sleep_ms", "0")) / 1000

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            time.sleep(self.sleep)
            where = mapping_of(x.__array_interface__["data"][0])
            out.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", x.copy()),
                pb_utils.Tensor("WHERE", np.array([where.encode()], dtype=object))]))
        return out
'''

PROBE_CONFIG = '''
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }},
         {{ name: "WHERE" data_type: TYPE_STRING dims: [ 1 ] }} ]
parameters {{ key: "sleep_ms" value {{ string_value: "{sleep}" }} }}
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
'''


def make_repo(root: pathlib.Path) -> pathlib.Path:
    repo = root / "repo"
    shutil.copytree(REPO / "identity_fp32", repo / "identity_fp32")
    for name, sleep in (("shm_probe", 0), ("shm_slow", 1500)):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(PROBE_PY)
        (repo / name / "config.pbtxt").write_text(PROBE_CONFIG.format(name=name, sleep=sleep))
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("shm"))


@pytest.fixture(scope="module")
def srv(repo):
    s = Server((repo,), "--allow-client-shm=true")
    yield s
    s.stop()


class Regions:
    """Client segments created by one test, always destroyed (and unregistered) at the end."""

    def __init__(self, url: str):
        self.client = httpclient.InferenceServerClient(url)
        self.handles = {}
        self.tag = uuid.uuid4().hex[:8]

    def key(self, name: str) -> str:
        return f"/cshm_{self.tag}_{name}"

    def create(self, name: str, size: int, register: bool = True, offset: int = 0):
        h = shm.create_shared_memory_region(name, self.key(name), size)
        self.handles[name] = h
        if register:
            self.client.register_system_shared_memory(name, self.key(name), size - offset, offset)
        return h

    def close(self):
        try:
            self.client.unregister_system_shared_memory()
        finally:
            for h in self.handles.values():
                shm.destroy_shared_memory_region(h)
            self.client.close()


@pytest.fixture
def regions(srv):
    r = Regions(srv.url)
    yield r
    r.close()


def mapped_by(server: Server, key: str) -> list[int]:
    """pids of the server's processes that still map the client segment ``key``."""
    path = "/dev/shm/" + key.lstrip("/")
    pids = []
    for pid in [server.proc.pid, *server.children()]:
        try:
            maps = pathlib.Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        if path in maps:
            pids.append(pid)
    return pids


def wait_unmapped(server: Server, key: str, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while mapped_by(server, key) and time.monotonic() < end:
        time.sleep(0.05)
    assert mapped_by(server, key) == []


def shm_input(mod, name: str, n: int, region: str, offset: int = 0):
    t = mod.InferInput(name, [n], "FP32")
    t.set_shared_memory(region, n * 4, offset)
    return t


def shm_output(mod, name: str, region: str, size: int, offset: int = 0):
    o = mod.InferRequestedOutput(name)
    o.set_shared_memory(region, size, offset)
    return o


def raises(fn, status: str, text: str) -> None:
    with pytest.raises(InferenceServerException) as info:
        fn()
    assert text in info.value.message(), info.value.message()
    assert str(info.value.status()) == status, (info.value.status(), info.value.message())


# ------------------------------------------------------------------ data path


@pytest.mark.parametrize("proto", ["http", "grpc"])
def test_identity_in_and_out_with_offsets(srv, regions, proto):
    """Input and output in one region at offsets; the response carries metadata only."""
    n = 1024
    x = np.arange(n, dtype=np.float32)
    h = regions.create("io", 64 + 2 * n * 4, offset=64)          # registered at offset 64
    shm.set_shared_memory_region(h, [x], offset=64)
    mod, url = (httpclient, srv.url) if proto == "http" else (grpcclient, srv.grpc_url)
    client = mod.InferenceServerClient(url)
    res = client.infer("identity_fp32", [shm_input(mod, "INPUT0", n, "io")],
                       outputs=[shm_output(mod, "OUTPUT0", "io", n * 4, offset=n * 4)])
    y = shm.get_contents_as_numpy(h, np.float32, [n], offset=64 + n * 4)
    np.testing.assert_array_equal(y, x)
    if proto == "http":                                         # not repeated in the body
        assert res.get_response()["outputs"] == [
            {"name": "OUTPUT0", "datatype": "FP32", "shape": [n]}]
    else:
        assert list(res.get_response().raw_output_contents) == [b""]


def test_mixed_shm_and_ordinary_tensors(srv, regions):
    n = 16
    x = np.linspace(0, 1, n, dtype=np.float32)
    h = regions.create("mix_in", n * 4)
    shm.set_shared_memory_region(h, [x])
    client = httpclient.InferenceServerClient(srv.url)
    # shm input, ordinary output (and the probe's second output as ordinary BYTES)
    res = client.infer("shm_probe", [shm_input(httpclient, "INPUT0", n, "mix_in")])
    np.testing.assert_array_equal(res.as_numpy("OUTPUT0"), x)
    # ordinary input, shm output
    out = regions.create("mix_out", n * 4)
    inp = httpclient.InferInput("INPUT0", [n], "FP32")
    inp.set_data_from_numpy(x * 2)
    res = client.infer("shm_probe", [inp], outputs=[shm_output(httpclient, "OUTPUT0", "mix_out",
                                                               n * 4),
                                                    httpclient.InferRequestedOutput("WHERE")])
    np.testing.assert_array_equal(shm.get_contents_as_numpy(out, np.float32, [n]), x * 2)
    assert res.as_numpy("WHERE") is not None and "data" not in res.get_output("OUTPUT0")


def test_model_reads_input_in_place(srv, regions):
    """The Python model's input array lies inside the worker's mapping of the client key."""
    n = 4096
    h = regions.create("probe", n * 4)
    shm.set_shared_memory_region(h, [np.ones(n, np.float32)])
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    res = client.infer("shm_probe", [shm_input(grpcclient, "INPUT0", n, "probe")],
                       outputs=[grpcclient.InferRequestedOutput("WHERE")])
    assert res.as_numpy("WHERE")[0].decode() == "/dev/shm/" + regions.key("probe").lstrip("/")


# ------------------------------------------------------------------ bad input


def test_registration_errors(srv, regions):
    c = regions.client
    regions.create("r", 1024)
    raises(lambda: c.register_system_shared_memory("r", regions.key("r"), 16), "400",
           "shared memory region 'r' already in manager")
    raises(lambda: c.register_system_shared_memory("nokey", "/never_created_" + regions.tag, 16),
           "400", f"Unable to open shared memory region: '/never_created_{regions.tag}'")
    raises(lambda: c.register_system_shared_memory("big", regions.key("r"), 1000, 25), "400",
           "failed to register shared memory region 'big': invalid args")
    raises(lambda: c.register_system_shared_memory("huge", regions.key("r"), 2 ** 64 - 1, 1),
           "400", "invalid args")
    raises(lambda: c.get_system_shared_memory_status("unknown"), "404",
           "Unable to find system shared memory region: 'unknown'")
    raises(lambda: c.get_cuda_shared_memory_status("r"), "404",
           "Unable to find cuda shared memory region: 'r'")
    c.unregister_system_shared_memory("unknown")                 # no error, like Triton
    assert [s["name"] for s in c.get_system_shared_memory_status()] == ["r"]


def test_request_range_errors(srv, regions):
    c = httpclient.InferenceServerClient(srv.url)
    regions.create("small", 64)
    run = lambda *a, **k: c.infer("identity_fp32", [shm_input(httpclient, "INPUT0", *a, **k)])
    raises(lambda: run(4, "nowhere"), "404", "Unable to find shared memory region: 'nowhere'")
    raises(lambda: run(4, "small", 64), "400", "Invalid offset for shared memory region: 'small'")
    raises(lambda: run(8, "small", 48), "400",
           "Invalid offset + byte size for shared memory region: 'small'")
    raises(lambda: run(4, "small", 2 ** 62), "400", "Invalid offset for shared memory region")
    inp = httpclient.InferInput("INPUT0", [16], "FP32")
    inp.set_shared_memory("small", 32)                           # 16 floats need 64 bytes
    raises(lambda: c.infer("identity_fp32", [inp]), "400", "input byte size mismatch")
    out = shm_output(httpclient, "OUTPUT0", "small", 32)
    raises(lambda: c.infer("identity_fp32", [shm_input(httpclient, "INPUT0", 16, "small")],
                           outputs=[out]), "400",
           "shared memory size specified with the request for output 'OUTPUT0' (32 bytes) "
           "should be at least 64 bytes to hold the results")


def test_triton_key_rules_and_range_overflow(srv, regions):
    """QA L0_shared_memory test_register_reserved_names, test_register_invalid_shm_key,
    test_infer_integer_overflow: Triton's texts, the key checked before it is opened."""
    c = regions.client
    prefix = "triton_python_backend_shm_region_"
    for key in (f"{prefix}_k", f"/{prefix}_k", f"///{prefix}_k"):
        raises(lambda: c.register_system_shared_memory("n", key, 10000), "400",
               f"cannot register shared memory region 'n' with key '{key}' as the key "
               f"contains the reserved prefix '{prefix}'")
    for key in ("/", "///"):
        raises(lambda: c.register_system_shared_memory("n", key, 10000), "400",
               f"cannot register shared memory region 'n' - invalid shm key '{key}'")
    regions.create("ovf", 256)
    h = httpclient.InferenceServerClient(srv.url)
    run = lambda mod, cl, size: cl.infer("identity_fp32", [shm_input(mod, "INPUT0", 4, "ovf")],
                                         outputs=[shm_output(mod, "OUTPUT0", "ovf", size, 32)])
    raises(lambda: run(httpclient, h, 2 ** 64 - 32), "400",
           "Integer overflow detected: byte_size (18446744073709551584) + offset (32) exceeds "
           "maximum value (18446744073709551615) for region 'ovf'")
    # gRPC's int64: a negative size is Triton's size_t, as huge.
    g = grpcclient.InferenceServerClient(srv.grpc_url)
    raises(lambda: run(grpcclient, g, -32), "StatusCode.INVALID_ARGUMENT",
           "Integer overflow detected: byte_size (18446744073709551584) + offset (32)")
    assert [r["name"] for r in c.get_system_shared_memory_status()] == ["ovf"]


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None,
                    reason="cupy is installed: tests/gpu covers CUDA shared memory")
def test_cuda_registration_without_gpu(srv):
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    h = httpclient.InferenceServerClient(srv.url)
    assert "cuda_shared_memory" not in h.get_server_metadata()["extensions"]
    assert "system_shared_memory" in h.get_server_metadata()["extensions"]
    # tritonclient takes the handle base64-encoded (as cuda_shared_memory.get_raw_handle
    # returns it): gRPC decodes it to bytes, HTTP sends it as {"b64": ...}.
    b64 = lambda n: base64.b64encode(b"\1" * n).decode()
    raises(lambda: c.register_cuda_shared_memory("g", b64(10), 0, 16),
           "StatusCode.INVALID_ARGUMENT", "failed to register shared memory region 'g': "
           "invalid args ('raw_handle' must be a cudaIpcMemHandle_t of 64 bytes, got 10)")
    raises(lambda: h.register_cuda_shared_memory("g", b64(63), 0, 16), "400",
           "64 bytes, got 63")
    raises(lambda: h.register_cuda_shared_memory("g", "not base64!", 0, 16), "400",
           "not base64")
    raises(lambda: h.register_cuda_shared_memory("g", b64(64), 0, 16), "501",
           "CUDA shared memory is not available on this server")
    raises(lambda: c.register_cuda_shared_memory("g", b64(64), 0, 16),
           "StatusCode.UNIMPLEMENTED", "cupy is not installed")
    assert c.get_cuda_shared_memory_status().regions == {}


# ------------------------------------------------------------------ lifetimes


def test_unregister_while_in_use(srv, regions):
    """The running request completes; the mapping goes only after its last use."""
    n = 256
    x = np.arange(n, dtype=np.float32)
    h = regions.create("busy", n * 4)
    out = regions.create("busy_out", n * 4)
    shm.set_shared_memory_region(h, [x])
    result = {}

    def run():
        c = httpclient.InferenceServerClient(srv.url, network_timeout=30)
        try:
            result["r"] = c.infer("shm_slow", [shm_input(httpclient, "INPUT0", n, "busy")],
                                  outputs=[shm_output(httpclient, "OUTPUT0", "busy_out", n * 4)])
        except Exception as exc:  # noqa: BLE001 - asserted below
            result["e"] = exc
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)                       # the model is sleeping with the input mapped
    regions.client.unregister_system_shared_memory("busy")
    regions.client.unregister_system_shared_memory("busy_out")
    assert mapped_by(srv, regions.key("busy"))      # still in use: still mapped
    t.join(30)
    assert "e" not in result, result.get("e")
    np.testing.assert_array_equal(shm.get_contents_as_numpy(out, np.float32, [n]), x)
    wait_unmapped(srv, regions.key("busy"))
    wait_unmapped(srv, regions.key("busy_out"))


def test_unregistered_while_in_use_stays_listed_and_usable_until_done(srv, regions):
    """QA L0_shared_memory TestSharedMemoryUnregister: Triton marks a region in use as
    awaiting unregistration: still listed, still usable by a new request; it goes once the
    last request using it is answered."""
    n = 64
    x = np.arange(n, dtype=np.float32)
    shm.set_shared_memory_region(regions.create("d_in", n * 4), [x])
    regions.create("d_out", n * 4)
    names = lambda: sorted(r["name"] for r in regions.client.get_system_shared_memory_status())
    results = []

    def run():
        c = httpclient.InferenceServerClient(srv.url, network_timeout=30)
        try:
            results.append(c.infer("shm_slow", [shm_input(httpclient, "INPUT0", n, "d_in")],
                                   outputs=[shm_output(httpclient, "OUTPUT0", "d_out", n * 4)]))
        except Exception as exc:  # noqa: BLE001 - asserted below
            results.append(exc)
    first = threading.Thread(target=run)
    first.start()
    time.sleep(0.5)                       # the model is sleeping with the regions in use
    regions.client.unregister_system_shared_memory()
    assert names() == ["d_in", "d_out"]
    assert regions.client.get_system_shared_memory_status("d_in")[0]["name"] == "d_in"
    second = threading.Thread(target=run)
    second.start()
    first.join(30)
    second.join(30)
    assert len(results) == 2 and not any(isinstance(r, Exception) for r in results), results
    # the region goes when the frontend's idle notice reaches the parent and the parent's
    # new table is applied: moments after the last answer, not before the client reads it
    deadline = time.monotonic() + 10
    while names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert names() == []
    raises(lambda: regions.client.get_system_shared_memory_status("d_in"), "404",
           "Unable to find system shared memory region: 'd_in'")


def test_reregistered_key_is_a_new_segment(srv, regions):
    """Same key, new segment of the same size: the worker must not reuse the old mapping."""
    n = 64
    c = httpclient.InferenceServerClient(srv.url)
    for value in (1.0, 2.0):
        h = regions.create("again", n * 4)
        shm.set_shared_memory_region(h, [np.full(n, value, np.float32)])
        res = c.infer("identity_fp32", [shm_input(httpclient, "INPUT0", n, "again")])
        assert res.as_numpy("OUTPUT0")[0] == value
        c.unregister_system_shared_memory("again")
        shm.destroy_shared_memory_region(regions.handles.pop("again"))
    wait_unmapped(srv, regions.key("again"))


CLIENT_SCRIPT = '''
import sys, time, numpy as np
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
url, key = sys.argv[1], sys.argv[2]
h = shm.create_shared_memory_region("dying", key, 1024)
shm.set_shared_memory_region(h, [np.ones(256, np.float32)])
c = httpclient.InferenceServerClient(url)
c.register_system_shared_memory("dying", key, 1024)
i = httpclient.InferInput("INPUT0", [256], "FP32"); i.set_shared_memory("dying", 1024)
c.infer("identity_fp32", [i])
print("ready", flush=True)
time.sleep(60)
'''


def test_client_dies_without_unregistering(srv, tmp_path):
    key = f"/cshm_dying_{uuid.uuid4().hex[:8]}"
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT)
    proc = subprocess.Popen([sys.executable, "-W", "ignore", str(script), srv.url, key],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.kill()
        proc.wait()
        c = httpclient.InferenceServerClient(srv.url)
        assert c.is_server_live()
        assert [s["key"] for s in c.get_system_shared_memory_status("dying")] == [key]
        c.unregister_system_shared_memory("dying")
        wait_unmapped(srv, key)
        assert c.is_server_ready()
    finally:
        proc.kill()
        proc.wait()
        os.path.exists("/dev/shm" + key) and os.unlink("/dev/shm" + key)


def test_client_shm_is_off_by_default_and_the_error_names_the_flag(tmp_path):
    """As Triton 2.68+: without --allow-client-shm=true registration is refused."""
    s = Server((REPO,))
    try:
        h = httpclient.InferenceServerClient(s.url)
        c = grpcclient.InferenceServerClient(s.grpc_url)
        flag = "Start the server with '--allow-client-shm=true' to enable."
        raises(lambda: h.register_system_shared_memory("r", "/tritond_any", 64), "501", flag)
        raises(lambda: c.register_system_shared_memory("r", "/tritond_any", 64),
               "StatusCode.UNIMPLEMENTED", "Client shared memory is disabled. " + flag)
        assert "system_shared_memory" not in h.get_server_metadata()["extensions"]
    finally:
        s.stop()
