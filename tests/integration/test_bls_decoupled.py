"""BLS calls to a decoupled model (``exec(decoupled=True)``, ``async_exec(decoupled=True)``)
through a real tritond and the real tritonclient: every response in order, and a caller
that leaves the iterator unfinished (or never starts it) holds none of the callee's
output slots (Triton's ResponseIterator frees the rest when it is destroyed)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.ensemble_stream_repo import REPEAT_PY
from tests.server import Server, segments_of
from tritond.shm.arena import is_oneoff

# ``caller``: IN[0] responses asked of ``repeat``; the request's parameter ``take`` says how
# many it reads (-1: all) and ``mode`` how it calls (sync / async). OUT: the sum of what it
# read, COUNT: how many it read.
CALLER_PY = '''
import asyncio
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [self.one(r) for r in requests]

    def one(self, r):
        p = json.loads(r.parameters())
        x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
        call = pb_utils.InferenceRequest(model_name="repeat", requested_output_names=["OUT"],
                                         inputs=[pb_utils.Tensor("IN", x.copy())])
        take = p.get("take", -1)
        if p.get("mode") in ("unary", "unary_async"):   # exec() without decoupled=True
            resp = call.exec() if p["mode"] == "unary" else asyncio.run(call.async_exec())
            if resp.has_error():
                raise pb_utils.TritonModelException(resp.error().message())
            return pb_utils.InferenceResponse([
                pb_utils.Tensor("OUT", pb_utils.get_output_tensor_by_name(resp, "OUT").as_numpy()),
                pb_utils.Tensor("COUNT", np.array([1], np.int32))])
        if p.get("mode") == "listed":        # every response the iterator yields
            return self.listed(call, p["how"])
        if p.get("mode") == "again":         # a second and third pass over the iterator
            return self.again(call.exec(decoupled=True))
        if p.get("mode") == "async":
            total, count = asyncio.run(self.read_async(call, take))
        elif p.get("mode") == "awaited":     # Triton's form: a plain for on what was awaited
            total, count = asyncio.run(self.read_awaited(call, take))
        else:
            total, count = self.read(call.exec(decoupled=True), take)
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("OUT", total.astype(np.float32)),
            pb_utils.Tensor("COUNT", np.array([count], np.int32))])

    def read(self, responses, take):
        total, count = np.zeros(4, np.float32), 0
        for resp in responses:
            if count == take:
                break
            if resp.has_error():
                raise pb_utils.TritonModelException(resp.error().message())
            if not resp.output_tensors():     # the empty final response (as Triton's)
                continue
            total = total + pb_utils.get_output_tensor_by_name(resp, "OUT").as_numpy()
            count += 1
        return total, count

    def listed(self, call, how):
        if how == "sync":
            got = list(call.exec(decoupled=True))
        elif how == "awaited":
            got = asyncio.run(self.awaited_list(call))
        else:
            got = asyncio.run(self.async_list(call))
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("OUT", np.array([len(g.output_tensors()) for g in got] + [0] * 4,
                                            np.float32)[:4]),
            pb_utils.Tensor("COUNT", np.array([len(got)], np.int32))])

    def again(self, responses):
        first = list(responses)
        second = list(responses)
        third = list(responses)
        same = all(a is b for a, b in zip(first, second)) and len(first) == len(second)
        total = sum((pb_utils.get_output_tensor_by_name(r, "OUT").as_numpy()
                     for r in second if r.output_tensors()), np.zeros(4, np.float32))
        texts = [r.parameters() for r in first]
        flags = 4 * same + 2 * (texts[-1] == "") + (texts[0] == "{}")
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("OUT", np.array([len(first), len(second), len(third), flags],
                                            np.float32)),
            pb_utils.Tensor("COUNT", np.array([int(total.sum())], np.int32))])

    async def awaited_list(self, call):
        return list(await call.async_exec(decoupled=True))

    async def async_list(self, call):
        return [r async for r in await call.async_exec(decoupled=True)]

    async def read_awaited(self, call, take):
        return self.read(await call.async_exec(decoupled=True), take)

    async def read_async(self, call, take):
        total, count = np.zeros(4, np.float32), 0
        responses = await call.async_exec(decoupled=True)
        if take == 0:
            return total, count
        async for resp in responses:
            if resp.has_error():
                raise pb_utils.TritonModelException(resp.error().message())
            if not resp.output_tensors():     # the empty final response (as Triton's)
                continue
            total = total + pb_utils.get_output_tensor_by_name(resp, "OUT").as_numpy()
            count += 1
            if count == take:
                break
        return total, count
'''


# ``slow``: OUT = IN after 100 ms (it ignores cancellation). ``gives_up`` calls it with
# async_exec() under asyncio.wait_for with a 20 ms limit (slow is running by then; the
# parameter ``limit`` sets another), on its own event loop (``async def
# execute``) or, with the parameter ``run``, in asyncio.run (a loop closed when the late
# answer comes); COUNT: how many calls timed out.
SLOW_PY = '''
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(0.1)
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy().copy())])
            for r in requests]
'''

GIVES_UP_PY = '''
import asyncio
import json
import numpy as np
import triton_python_backend_utils as pb_utils


async def attempt(r, limit):
    x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
    call = pb_utils.InferenceRequest(model_name="slow", requested_output_names=["OUT"],
                                     inputs=[pb_utils.Tensor("IN", x.copy())])
    try:
        await asyncio.wait_for(call.async_exec(), limit)
        return 0
    except asyncio.TimeoutError:
        return 1


class TritonPythonModel:
    async def execute(self, requests):
        out = []
        for r in requests:
            p = json.loads(r.parameters())
            limit = p.get("limit", 0.02)
            if "run" in p:
                n = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: asyncio.run(attempt(r, limit)))
            else:
                n = await attempt(r, limit)
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUT", np.zeros(4, np.float32)),
                pb_utils.Tensor("COUNT", np.array([n], np.int32))]))
        return out
'''


# ``until_cancelled`` (decoupled): a response every 10 ms, IN[0] at most, until its request
# is cancelled; then a CANCELLED error as its final response (QA's
# response_sender_until_cancelled). ``canceller`` reads it with a plain ``for`` (after
# ``exec`` or an awaited ``async_exec``, parameter ``mode``) and calls the iterator's
# ``cancel()`` after two responses (QA decoupled_bls_cancel / decoupled_bls_async_cancel).
# OUT[0]: 1 if the last response was the CANCELLED error; COUNT: responses with outputs.
UNTIL_CANCELLED_PY = '''
import threading
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        for r in requests:
            threading.Thread(target=self.respond, args=(r,), daemon=True).start()

    def respond(self, r):
        sender = r.get_response_sender()
        x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
        for _ in range(int(x[0])):
            if sender.is_cancelled():
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "cancelled", pb_utils.TritonError.CANCELLED)),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", x.copy())]))
            time.sleep(0.01)
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
'''

CANCELLER_PY = '''
import asyncio
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            call = pb_utils.InferenceRequest(model_name="until_cancelled",
                                             requested_output_names=["OUT"],
                                             inputs=[pb_utils.Tensor("IN", x.copy())])
            if json.loads(r.parameters()).get("mode") == "awaited":
                cancelled, count, again = asyncio.run(self.awaited(call))
            else:
                cancelled, count, again = self.read(call.exec(decoupled=True))
            out.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("OUT", np.array([cancelled, *again], np.float32)),
                pb_utils.Tensor("COUNT", np.array([count], np.int32))]))
        return out

    async def awaited(self, call):
        return self.read(await call.async_exec(decoupled=True))

    def read(self, stream):
        count, cancelled = 0, 0
        for resp in stream:
            if resp.has_error():
                cancelled = int(resp.error().code() == pb_utils.TritonError.CANCELLED)
                break
            count += 1
            if count == 2:
                stream.cancel()
        stream.cancel()           # after the end: nothing happens
        again = list(stream)      # a second pass: from the first response, the error too
        return cancelled, count, (len(again), int(again[-1].has_error()),
                                  int(again[-1].parameters() == ""))
'''


def _python(name: str, io: str, extra: str = "") -> str:
    return (f'name: "{name}"\nbackend: "python"\n{io}'
            f'instance_group [ {{ kind: KIND_CPU count: 1 }} ]\n{extra}')


IN = 'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
OUT_COUNT = ('output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] },'
             ' { name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n')


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = tmp_path_factory.mktemp("bls_decoupled") / "repo"
    models = {
        "repeat": (REPEAT_PY, _python(
            "repeat", IN + 'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n',
            "model_transaction_policy { decoupled: true }")),
        "caller": (CALLER_PY, _python("caller", IN + OUT_COUNT)),
        "slow": (SLOW_PY, _python(
            "slow", IN + 'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')),
        "gives_up": (GIVES_UP_PY, _python("gives_up", IN + OUT_COUNT)),
        "until_cancelled": (UNTIL_CANCELLED_PY, _python(
            "until_cancelled", IN + 'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]\n',
            "model_transaction_policy { decoupled: true }")),
        "canceller": (CANCELLER_PY, _python("canceller", IN + OUT_COUNT)),
    }
    for name, (code, config) in models.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text(code)
        (repo / name / "config.pbtxt").write_text(config)
    # A tiny output arena: ``repeat``'s slots that were never released would overflow it
    # into one-off segments, which stay for as long as they are held.
    server = Server([repo], "--output-arena-byte-size=1024")
    yield server
    server.stop()


def _call(client, n: int, **params):
    x = np.array([n, 1, 2, 3], np.float32)
    t = httpclient.InferInput("IN", [4], "FP32")
    t.set_data_from_numpy(x)
    result = client.infer("caller", [t], parameters=params)
    return x, result.as_numpy("OUT"), int(result.as_numpy("COUNT")[0])


def test_a_decoupled_bls_call_reads_every_response_in_order(srv):
    client = httpclient.InferenceServerClient(srv.url)
    for mode in ("sync", "async", "awaited"):
        x, total, count = _call(client, 5, mode=mode)
        assert count == 5
        np.testing.assert_array_equal(total, sum(x + k for k in range(5)))


@pytest.mark.parametrize("mode", ["sync", "async", "awaited"])
def test_an_unfinished_decoupled_bls_iterator_releases_the_callees_outputs(srv, mode):
    client = httpclient.InferenceServerClient(srv.url)
    for i in range(30):
        take = i % 3                  # read 0 (never started), 1 or 2 of the 8 responses
        x, total, count = _call(client, 8, mode=mode, take=take)
        assert count == take
        np.testing.assert_array_equal(total, sum((x + k for k in range(take)),
                                                 np.zeros(4, np.float32)))
    x, total, count = _call(client, 3, mode=mode)   # the calls after them work
    assert count == 3
    _no_oneoff_left(srv)


def _no_oneoff_left(srv) -> None:
    """Every response of every call was released: the callee's one-off segments (made
    while its arena was full) are freed, and unlinked after 1 s idle (spares)."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        left = [n for n in segments_of(srv.proc.pid) if is_oneoff(n)]
        if not left:
            break
        time.sleep(0.2)
    assert not left, left


@pytest.mark.parametrize("how", ["sync", "awaited", "async_for"])
def test_a_decoupled_bls_iterator_yields_the_callees_final_response_even_empty(srv, how):
    """python_backend's InferResponseComplete makes a response of every callback, the final
    one without a response too (a callee's ``send(flags=FINAL)``): its ResponseIterator
    yields it, empty (QA bls_async counts ``response_count - 1``). A final response with
    outputs is the last one, with nothing after it."""
    client = httpclient.InferenceServerClient(srv.url)
    for n, count, outputs in ((3, 4, [1, 1, 1, 0]), (-1, 1, [1, 0, 0, 0])):
        x = np.array([n, 0, 0, 0], np.float32)
        t = httpclient.InferInput("IN", [4], "FP32")
        t.set_data_from_numpy(x)
        result = client.infer("caller", [t], parameters={"mode": "listed", "how": how})
        assert int(result.as_numpy("COUNT")[0]) == count
        assert result.as_numpy("OUT").tolist() == outputs


def test_a_finished_decoupled_bls_iterator_starts_over_at_the_next_for(srv):
    """python_backend's ResponseIterator::Iter resets its index once a pass read the final
    response: a second ``for`` yields the same responses (kept, their outputs still
    readable) and so does a third. The empty final response's ``parameters()`` is ""
    (request_executor.cc builds it without reading any), a real one's "{}"."""
    client = httpclient.InferenceServerClient(srv.url)
    x = np.array([3, 1, 2, 3], np.float32)
    t = httpclient.InferInput("IN", [4], "FP32")
    t.set_data_from_numpy(x)
    result = client.infer("caller", [t], parameters={"mode": "again"})
    assert result.as_numpy("OUT").tolist() == [4, 4, 4, 7]    # the same ones; "", "{}"
    assert int(result.as_numpy("COUNT")[0]) == sum(x + k for k in range(3)).sum()
    _no_oneoff_left(srv)


@pytest.mark.parametrize("mode", ["sync", "awaited"])
def test_a_decoupled_bls_iterator_cancels_its_call(srv, mode):
    """Triton's ResponseIterator.cancel(): the callee sees its request cancelled and ends
    with its own final response, which the caller still reads; without the cancel the
    callee would send 500 responses (5 s)."""
    client = httpclient.InferenceServerClient(srv.url)
    t = httpclient.InferInput("IN", [4], "FP32")
    t.set_data_from_numpy(np.array([500, 0, 0, 0], np.float32))
    started = time.monotonic()
    result = client.infer("canceller", [t], parameters={"mode": mode})
    out = result.as_numpy("OUT").tolist()
    count = int(result.as_numpy("COUNT")[0])
    assert out[0] == 1                                     # ended by the CANCELLED error
    assert 2 <= count < 100
    # Read again after the cancel (Triton's Iter restarts a finished iterator): every
    # response, the CANCELLED error last, and an error response's parameters() is ""
    assert out[1:] == [count + 1, 1, 1]
    assert time.monotonic() - started < 4
    _no_oneoff_left(srv)


@pytest.mark.parametrize("mode", ["unary", "unary_async"])
def test_a_bls_call_without_decoupled_to_a_decoupled_model_is_refused(srv, mode):
    """Triton's python_backend (request_executor.cc) refuses it before sending it: the call's
    response has this error (here raised by the caller, so the client sees it)."""
    client = httpclient.InferenceServerClient(srv.url)
    with pytest.raises(InferenceServerException) as err:
        _call(client, 3, mode=mode)
    assert ("Model repeat is using the decoupled. The current BLS request call doesn't "
            "support models using the decoupled transaction policy. Please use "
            "'decoupled=True' argument to the 'exec' or 'async_exec' calls for "
            "decoupled models.'") in err.value.message()
    x, total, count = _call(client, 2)             # the server goes on
    assert count == 2


@pytest.mark.parametrize("run", [False, True])
def test_an_async_bls_call_given_up_releases_its_late_answer(srv, run):
    """``asyncio.wait_for`` cancels the call: its answer comes later (slow ignores the
    cancel), to a queue nobody reads (``async def execute``'s loop) or to a loop already
    closed (asyncio.run). Released either way, and the BLS thread goes on."""
    client = httpclient.InferenceServerClient(srv.url, network_timeout=60)
    t = httpclient.InferInput("IN", [4], "FP32")
    t.set_data_from_numpy(np.ones(4, np.float32))
    params = {"run": 1} if run else {}

    def slow_ran() -> int:
        st = client.get_inference_statistics("slow")["model_stats"][0]["inference_stats"]
        return st["success"]["count"]

    for _ in range(24):                # more answers than slow's arena holds (16 slots)
        ran = slow_ran()
        result = client.infer("gives_up", [t], parameters=params)
        assert int(result.as_numpy("COUNT")[0]) == 1
        end = time.monotonic() + 10    # slow answers after 100 ms: one call at a time
        while slow_ran() == ran and time.monotonic() < end:
            time.sleep(0.02)
    # gives_up's BLS thread still reads: a call given time is answered
    result = client.infer("gives_up", [t], parameters={**params, "limit": 10})
    assert int(result.as_numpy("COUNT")[0]) == 0
    _no_oneoff_left(srv)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_decoupled_bls_call_whose_callee_dies_mid_stream_ends_with_its_error(srv, mode):
    """``repeat`` (IN[0] == 77) sends one response, then its worker is killed, long after
    its execute returned. The caller's iterator gets the UNAVAILABLE error a frontend gives
    its own client in that case (the scheduler forwards the model table to BLS callers); it
    waited for good before."""
    client = httpclient.InferenceServerClient(srv.url, network_timeout=60)
    with pytest.raises(InferenceServerException) as err:
        _call(client, 77, mode=mode)
    assert "while sending the responses of the request" in err.value.message(), err.value
    end = time.monotonic() + 60          # the parent restarts repeat's worker
    while True:
        try:
            x, total, count = _call(client, 2, mode=mode)
            break
        except InferenceServerException:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)
    assert count == 2
