"""Checks one tritonclient release against a running tritond (run as a script).

``python older_client_checks.py HTTP_URL GRPC_URL`` with the release under test
first on ``PYTHONPATH``. Uses only the client API every release since 2.30 has.
Prints one JSON line per check (``{"check", "ok", "error"}``); the pytest side
(test_older_clients.py) asserts they all passed. Models: ``simple``,
``simple_string``, ``identity_fp32`` (model_repository/), ``repeat_int32``
(decoupled) and ``simple_sequence``.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import sys
import traceback

import numpy as np
import tritonclient
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

A = np.arange(16, dtype=np.int32).reshape(1, 16)
B = np.full((1, 16), 3, dtype=np.int32)
WORDS = np.array([[str(i).encode() for i in range(15)] + [b"\x00nul"]], dtype=np.object_)
SHM_BYTES = A.nbytes


CHECKS: list = []    # (name, callable), in the order they run


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def inputs(mod, binary=True):
    ins = [mod.InferInput("INPUT0", [1, 16], "INT32"), mod.InferInput("INPUT1", [1, 16], "INT32")]
    for inp, arr in zip(ins, (A, B)):
        if mod is httpclient or mod is httpaio:
            inp.set_data_from_numpy(arr, binary_data=binary)
        else:
            inp.set_data_from_numpy(arr)
    return ins


def sum_diff(result):
    expect(np.array_equal(result.as_numpy("OUTPUT0"), A + B), "OUTPUT0 != INPUT0 + INPUT1")
    expect(np.array_equal(result.as_numpy("OUTPUT1"), A - B), "OUTPUT1 != INPUT0 - INPUT1")


# -------------------------------------------------------------------------- both protocols
def metadata(c, grpc):
    expect(c.is_server_live() and c.is_server_ready(), "server not live and ready")
    expect(c.is_model_ready("simple"), "simple not ready")
    meta = c.get_server_metadata(as_json=True) if grpc else c.get_server_metadata()
    expect(meta["name"] == "triton", f"server name {meta['name']!r}")
    expect("version" in meta and meta.get("extensions"), f"server metadata {meta}")
    model = c.get_model_metadata("simple", as_json=True) if grpc else c.get_model_metadata("simple")
    expect([i["name"] for i in model["inputs"]] == ["INPUT0", "INPUT1"], f"metadata {model}")
    expect(model["inputs"][0]["datatype"] == "INT32", f"datatype {model['inputs'][0]}")
    expect(model["inputs"][0]["shape"] in ([-1, 16], ["-1", "16"]), f"shape {model['inputs'][0]}")
    expect("1" in model["versions"], f"versions {model.get('versions')}")
    if grpc:       # the typed message as well: old field numbers must still parse
        typed = c.get_model_metadata("simple")
        expect(list(typed.inputs[0].shape) == [-1, 16], f"typed shape {typed.inputs[0].shape}")
        cfg = c.get_model_config("simple").config
        expect(cfg.max_batch_size == 8 and cfg.input[0].name == "INPUT0", f"config {cfg}")
        cfg = c.get_model_config("simple", as_json=True)["config"]
    else:
        cfg = c.get_model_config("simple")
    expect(cfg["max_batch_size"] == 8 and cfg["name"] == "simple", f"config {cfg}")


def infer(c, mod, binary=True):
    outs = [mod.InferRequestedOutput("OUTPUT0"), mod.InferRequestedOutput("OUTPUT1")]
    if mod is httpclient:
        outs = [httpclient.InferRequestedOutput(n, binary_data=binary)
                for n in ("OUTPUT0", "OUTPUT1")]
    result = c.infer("simple", inputs(mod, binary), outputs=outs, request_id="r1")
    sum_diff(result)
    response = result.get_response()
    if mod is httpclient:
        expect(response["model_name"] == "simple" and response["model_version"] == "1",
               f"response {response}")
        expect(response["id"] == "r1", f"id {response.get('id')}")
    else:
        expect(response.model_name == "simple" and response.model_version == "1",
               f"response {response}")
        expect(response.id == "r1", f"id {response.id}")


def compressed(c, grpc):
    """Compressed requests and responses (gzip/deflate over HTTP, gzip over gRPC)."""
    if grpc:
        sum_diff(c.infer("simple", inputs(grpcclient), compression_algorithm="gzip"))
        return
    for algorithm in ("gzip", "deflate"):
        sum_diff(c.infer("simple", inputs(httpclient), request_compression_algorithm=algorithm,
                         response_compression_algorithm=algorithm))


def infer_bytes(c, mod, binary=True):
    inp = mod.InferInput("INPUT0", [1, 16], "BYTES")
    if mod is httpclient:
        inp.set_data_from_numpy(WORDS, binary_data=binary)
        out = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    else:
        inp.set_data_from_numpy(WORDS)
        out = [grpcclient.InferRequestedOutput("OUTPUT0")]
    got = c.infer("simple_string", [inp], outputs=out).as_numpy("OUTPUT0")
    expect(got.shape == (1, 16), f"shape {got.shape}")
    # JSON outputs come back as str (what the client does with JSON strings)
    got = [x.encode() if isinstance(x, str) else bytes(x) for x in got.flat]
    expect(got == list(WORDS.flat), f"bytes {got}")


def system_shm(c, mod, grpc):
    key = f"/older-client-{os.getpid()}-{'g' if grpc else 'h'}"
    ih = shm.create_shared_memory_region("in_" + key[1:], key + "-in", 2 * SHM_BYTES)
    oh = shm.create_shared_memory_region("out_" + key[1:], key + "-out", 2 * SHM_BYTES)
    try:
        shm.set_shared_memory_region(ih, [A, B])
        c.register_system_shared_memory("in_region", key + "-in", 2 * SHM_BYTES)
        c.register_system_shared_memory("out_region", key + "-out", 2 * SHM_BYTES)
        status = c.get_system_shared_memory_status(as_json=True) if grpc else \
            c.get_system_shared_memory_status()
        names = sorted(r["name"] for r in (status["regions"].values() if grpc else status))
        expect(names == ["in_region", "out_region"], f"status {status}")
        ins = [mod.InferInput("INPUT0", [1, 16], "INT32"), mod.InferInput("INPUT1", [1, 16], "INT32")]
        ins[0].set_shared_memory("in_region", SHM_BYTES)
        ins[1].set_shared_memory("in_region", SHM_BYTES, offset=SHM_BYTES)
        outs = [mod.InferRequestedOutput("OUTPUT0"), mod.InferRequestedOutput("OUTPUT1")]
        outs[0].set_shared_memory("out_region", SHM_BYTES)
        outs[1].set_shared_memory("out_region", SHM_BYTES, offset=SHM_BYTES)
        result = c.infer("simple", ins, outputs=outs)
        expect(result.get_output("OUTPUT0") is not None, "OUTPUT0 missing from the response")
        got = shm.get_contents_as_numpy(oh, np.int32, [2, 16])
        expect(np.array_equal(got[0], (A + B)[0]) and np.array_equal(got[1], (A - B)[0]),
               f"shm outputs {got}")
    finally:
        c.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(ih)
        shm.destroy_shared_memory_region(oh)
    status = c.get_system_shared_memory_status(as_json=True) if grpc else \
        c.get_system_shared_memory_status()
    expect(not (status.get("regions") if grpc else status), f"left registered: {status}")


def statistics(c, grpc):
    stats = c.get_inference_statistics("simple", as_json=True) if grpc else \
        c.get_inference_statistics("simple")
    row = stats["model_stats"][0]
    expect(row["name"] == "simple" and row["version"] == "1", f"stats {row}")
    count = int(row["inference_stats"]["success"]["count"])
    expect(count >= 1, f"success count {count}")
    if grpc:
        typed = c.get_inference_statistics("simple").model_stats[0]
        expect(typed.inference_stats.success.count == count, "typed stats differ")


def repository(c, grpc):
    index = c.get_model_repository_index(as_json=True) if grpc else c.get_model_repository_index()
    rows = index.get("models", []) if grpc else index
    names = {r["name"]: r for r in rows}
    expect("simple" in names and names["simple"].get("state") == "READY", f"index {rows}")
    c.load_model("identity_fp32")
    expect(c.is_model_ready("identity_fp32"), "identity_fp32 not ready after load")
    c.unload_model("identity_fp32")
    expect(not c.is_model_ready("identity_fp32"), "identity_fp32 ready after unload")


def sequence(c, mod):
    values = [5, 7, 11]
    got = []
    for i, v in enumerate(values):
        inp = mod.InferInput("INPUT", [1, 1], "INT32")
        inp.set_data_from_numpy(np.array([[v]], np.int32))
        r = c.infer("simple_sequence", [inp], sequence_id=4242 + (mod is grpcclient),
                    sequence_start=i == 0, sequence_end=i == len(values) - 1)
        got.append(int(r.as_numpy("OUTPUT")[0][0]))
    expect(got == [6, 7, 11], f"sequence outputs {got}")   # READY * (INPUT + START)


def bad_input(c, mod):
    inp = mod.InferInput("NOPE", [1, 16], "INT32")
    inp.set_data_from_numpy(A)
    try:
        c.infer("simple", [inp])
    except InferenceServerException as exc:
        msg = exc.message()
        expect("'NOPE'" in msg and "simple" in msg, f"message {msg!r}")
        print(json.dumps({"error_message": msg}))
        return
    raise AssertionError("a bad input was accepted")


def http_checks(url):
    c = httpclient.InferenceServerClient(url)
    for name, fn in (("metadata", lambda: metadata(c, False)),
                     ("infer_binary", lambda: infer(c, httpclient, True)),
                     ("infer_json", lambda: infer(c, httpclient, False)),
                     ("compressed", lambda: compressed(c, False)),
                     ("bytes_binary", lambda: infer_bytes(c, httpclient, True)),
                     ("bytes_json", lambda: infer_bytes(c, httpclient, False)),
                     ("system_shm", lambda: system_shm(c, httpclient, False)),
                     ("statistics", lambda: statistics(c, False)),
                     ("repository", lambda: repository(c, False)),
                     ("sequence", lambda: sequence(c, httpclient)),
                     ("bad_input", lambda: bad_input(c, httpclient))):
        CHECKS.append(("http_" + name, fn))


def grpc_checks(url):
    c = grpcclient.InferenceServerClient(url)
    for name, fn in (("metadata", lambda: metadata(c, True)),
                     ("infer", lambda: infer(c, grpcclient)),
                     ("compressed", lambda: compressed(c, True)),
                     ("bytes", lambda: infer_bytes(c, grpcclient)),
                     ("system_shm", lambda: system_shm(c, grpcclient, True)),
                     ("statistics", lambda: statistics(c, True)),
                     ("repository", lambda: repository(c, True)),
                     ("sequence", lambda: sequence(c, grpcclient)),
                     ("bad_input", lambda: bad_input(c, grpcclient)),
                     ("decoupled_stream", lambda: stream(c))):
        CHECKS.append(("grpc_" + name, fn))


def stream(c):
    """repeat_int32 over a bidirectional stream: one response per element, in order."""
    got: queue.Queue = queue.Queue()
    c.start_stream(callback=lambda result, error: got.put((result, error)))
    try:
        ins = [grpcclient.InferInput("IN", [3], "INT32"), grpcclient.InferInput("DELAY", [3], "UINT32"),
               grpcclient.InferInput("WAIT", [1], "UINT32")]
        for inp, arr in zip(ins, (np.array([4, 5, 6], np.int32), np.zeros(3, np.uint32),
                                  np.zeros(1, np.uint32))):
            inp.set_data_from_numpy(arr)
        c.async_stream_infer("repeat_int32", ins, request_id="s1")
        values = []
        for _ in range(3):
            result, error = got.get(timeout=20)
            expect(error is None, f"stream error {error}")
            values.append(int(result.as_numpy("OUT")[0]))
            expect(result.get_response().id == "s1", "stream response id")
    finally:
        c.stop_stream()
    expect(values == [4, 5, 6], f"stream values {values}")


async def aio_checks(http_url, grpc_url):
    async with httpaio.InferenceServerClient(http_url) as c:
        expect(await c.is_server_ready(), "http aio: not ready")
        sum_diff(await c.infer("simple", inputs(httpaio)))
        meta = await c.get_model_metadata("simple")
        expect(meta["name"] == "simple", f"http aio metadata {meta}")
    c = grpcaio.InferenceServerClient(grpc_url)
    try:
        expect(await c.is_server_ready(), "grpc aio: not ready")
        sum_diff(await c.infer("simple", inputs(grpcaio)))
        meta = await c.get_model_metadata("simple", as_json=True)
        expect(meta["name"] == "simple", f"grpc aio metadata {meta}")

        async def requests():
            ins = [grpcaio.InferInput("IN", [2], "INT32"), grpcaio.InferInput("DELAY", [2], "UINT32"),
                   grpcaio.InferInput("WAIT", [1], "UINT32")]
            for inp, arr in zip(ins, (np.array([8, 9], np.int32), np.zeros(2, np.uint32),
                                      np.zeros(1, np.uint32))):
                inp.set_data_from_numpy(arr)
            yield {"model_name": "repeat_int32", "inputs": ins}
        values = []
        async for result, error in c.stream_infer(requests()):
            expect(error is None, f"aio stream error {error}")
            values.append(int(result.as_numpy("OUT")[0]))
            if len(values) == 2:
                break
        expect(values == [8, 9], f"aio stream values {values}")
    finally:
        await c.close()


def main(http_url, grpc_url):
    http_checks(http_url)
    grpc_checks(grpc_url)
    CHECKS.append(("aio", lambda: asyncio.run(aio_checks(http_url, grpc_url))))
    print(json.dumps({"client": os.path.dirname(tritonclient.__path__[0])}), flush=True)
    for name, fn in CHECKS:
        try:
            fn()
            print(json.dumps({"check": name, "ok": True}), flush=True)
        except Exception as exc:       # every check reports; one failure does not hide the rest
            print(json.dumps({"check": name, "ok": False, "error": f"{exc!r}",
                              "trace": traceback.format_exc()[-1500:]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
