"""FrontendCore: validation texts and the full Request -> Response -> Release path."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from tests.specs import spec_from_dict
from tests.frontend.harness import CONFIGS, int_input, leaked_segments, table
from tritond import messages
from tritond.frontend.core import TOGETHER_BELOW
from tritond.errors import Code, TritonError
from tritond.frontend.types import InferRequest, InputTensor, RequestedOutput


def run(coro):
    return asyncio.run(coro)


def expect_error(harness, req, code, text, whole=False):
    async def body():
        async with harness() as h:
            with pytest.raises(TritonError) as e:
                await h.core.infer(req)
            assert h.sched.empty()
            return e.value
    err = run(body())
    assert err.code == code, err
    if whole:
        assert err.message == text
    else:
        assert text in err.message, err.message
    return err


U = "[request id: <id_unknown>] "      # Triton core's LogRequest() of a request without id


def simple(*inputs, outputs=None, **kw):
    return InferRequest("simple", inputs=list(inputs), outputs=outputs, **kw)


def test_unknown_model(harness):
    expect_error(harness, InferRequest("nope"), Code.NOT_FOUND,
                 "Request for unknown model: 'nope' is not found")


def test_unknown_version(harness):
    expect_error(harness, InferRequest("simple", "7"), Code.NOT_FOUND, "version 7 is not found")


def test_unexpected_input(harness):
    req = simple(int_input("INPUT0"), int_input("BOGUS"))
    expect_error(harness, req, Code.INVALID_ARG,          # model.cc's: no request id
                 "unexpected inference input 'BOGUS' for model 'simple'", whole=True)


def test_missing_input(harness):
    expect_error(harness, simple(int_input("INPUT0"), id="r7"), Code.INVALID_ARG,
                 "[request id: r7] expected 2 inputs but got 1 inputs for model 'simple'. Got "
                 "input(s) ['INPUT0'], but missing required input(s) ['INPUT1']. Please provide "
                 "all required input(s).", whole=True)


def test_duplicate_input(harness):
    expect_error(harness, simple(int_input("INPUT0"), int_input("INPUT0")), Code.INVALID_ARG,
                 U + "input 'INPUT0' already exists in request", whole=True)


def test_datatype_mismatch(harness):
    bad = InputTensor("INPUT1", "FP32", [1, 16], bytes(64))
    expect_error(harness, simple(int_input("INPUT0"), bad), Code.INVALID_ARG,
                 U + "inference input 'INPUT1' data-type is 'FP32', but model 'simple' expects "
                 "'INT32'", whole=True)


def test_shape_mismatch(harness):
    expect_error(harness, simple(int_input("INPUT0"), int_input("INPUT1", n=15)),
                 Code.INVALID_ARG, U + "unexpected shape for input 'INPUT1' for model 'simple'. "
                 "Expected [-1,16], got [1,15]. NOTE: Setting a non-zero max_batch_size in the "
                 "model config requires a batch dimension to be prepended to each input shape. "
                 "If you want to specify the full shape including the batch dim in your input "
                 "dims config, try setting max_batch_size to zero. See the model configuration "
                 "docs for more info on max_batch_size.", whole=True)


def test_batch_too_large(harness):
    expect_error(harness, simple(int_input("INPUT0", 9), int_input("INPUT1", 9)), Code.INVALID_ARG,
                 U + "inference request batch-size must be <= 8 for 'simple'", whole=True)


def test_batch_disagrees(harness):
    expect_error(harness, simple(int_input("INPUT0", 2), int_input("INPUT1", 3)), Code.INVALID_ARG,
                 U + "input 'INPUT1' batch size does not match other inputs for 'simple'",
                 whole=True)


def test_byte_size_mismatch(harness):
    bad = InputTensor("INPUT1", "INT32", [1, 16], bytes(60))
    expect_error(harness, simple(int_input("INPUT0"), bad), Code.INVALID_ARG,
                 U + "input byte size mismatch for input 'INPUT1' for model 'simple'. Expected 64, "
                 "got 60", whole=True)


def test_bytes_parse_error(harness):
    bad = InputTensor("IN", "BYTES", [2], b"\x03\x00\x00\x00abc\x09\x00\x00\x00x")
    expect_error(harness, InferRequest("strings", inputs=[bad]), Code.INVALID_ARG,
                 "incomplete string for inference input 'IN' for model 'strings'")


def test_bytes_count_error(harness):
    bad = InputTensor("IN", "BYTES", [1], b"\x01\x00\x00\x00a\x01\x00\x00\x00b")
    expect_error(harness, InferRequest("strings", inputs=[bad]), Code.INVALID_ARG,
                 U + "unexpected number of string elements 2 for inference input 'IN' for model "
                 "'strings', expecting 1", whole=True)


def test_long_fixed_width_bytes_checked_like_any_other():
    # 40 elements of one length take check_bytes' vectorised path; a broken
    # length anywhere falls back to the walk that names the problem.
    from tritond.frontend.validate import check_bytes
    good = b"".join(b"\x03\x00\x00\x00abc" for _ in range(40))
    check_bytes("strings", "IN", memoryview(good), 40)
    bad = good[:-7] + b"\x05\x00\x00\x00abc"
    with pytest.raises(TritonError) as e:
        check_bytes("strings", "IN", memoryview(bad), 40)
    assert "incomplete string for inference input 'IN'" in e.value.message
    with pytest.raises(TritonError) as e:
        check_bytes("strings", "IN", good, 39)
    assert "unexpected number of string elements 40 for inference input 'IN'" in e.value.message


def test_unknown_output(harness):
    req = simple(int_input("INPUT0"), int_input("INPUT1"), outputs=[RequestedOutput("NOPE")])
    expect_error(harness, req, Code.INVALID_ARG,
                 "unexpected inference output 'NOPE' for model 'simple'")


def test_duplicate_output(harness):
    req = simple(int_input("INPUT0"), int_input("INPUT1"),
                 outputs=[RequestedOutput("OUTPUT0"), RequestedOutput("OUTPUT0")])
    expect_error(harness, req, Code.INVALID_ARG, "output 'OUTPUT0' already exists in request")


def test_negative_dim(harness):
    bad = InputTensor("IN", "BYTES", [-1], b"")
    expect_error(harness, InferRequest("strings", inputs=[bad]), Code.INVALID_ARG,
                 "All input dimensions should be specified for input 'IN'")


def test_not_ready_version_unavailable(harness):
    async def body():
        async with harness() as h:
            h.core.on_messages([table(extra=[messages.ModelEntry("simple", 2, "LOADING")])])
            with pytest.raises(TritonError) as e:
                await h.core.infer(InferRequest("simple", "2"))
            return e.value
    assert run(body()).code == Code.UNAVAILABLE


def test_optional_input_may_be_absent(harness):
    async def body():
        async with harness() as h:
            data = b"\x02\x00\x00\x00hi"
            task = asyncio.create_task(h.core.infer(
                InferRequest("strings", inputs=[InputTensor("IN", "BYTES", [1], data)])))
            req = await h.next_request()
            assert req.batch == 0 and [r.name for r in req.inputs] == ["IN"]
            assert bytes(h.cache.buffer(req.inputs[0].region, req.inputs[0].offset, 6)) == data
            h.respond(req.rid)
            result = await task
            assert result.outputs == []
    run(body())


def test_round_trip_request_response_release(harness):
    async def body():
        async with harness() as h:
            req = simple(int_input("INPUT0", 2), int_input("INPUT1", 2, start=100),
                         outputs=[RequestedOutput("OUTPUT1"), RequestedOutput("OUTPUT0")],
                         id="r1", parameters={"priority": 2, "timeout": 500, "sequence_id": 9,
                                              "sequence_start": True, "custom": "x"})
            task = asyncio.create_task(h.core.infer(req))
            msg = await h.next_request()
            assert (msg.model, msg.version, msg.batch, msg.request_id) == ("simple", 1, 2, "r1")
            assert (msg.priority, msg.timeout_us, msg.correlation_id, msg.flags) == (2, 500, 9, 1)
            assert msg.parameters == {"custom": "x"}
            assert [o.name for o in msg.outputs] == ["OUTPUT1", "OUTPUT0"]
            in0 = h.cache.array(msg.inputs[0])
            assert in0.shape == (2, 16) and in0[1, 15] == 31
            assert h.cache.array(msg.inputs[1])[0, 0] == 100
            refs = [h.output("OUTPUT0", in0 + 1), h.output("OUTPUT1", in0 - 1)]
            h.respond(msg.rid, refs)
            result = await task
            assert [o.name for o in result.outputs] == ["OUTPUT1", "OUTPUT0"]
            assert result.model_version == "1" and result.id == "r1"
            np.testing.assert_array_equal(result.outputs[1].as_numpy(), in0 + 1)
            assert result.outputs[1].requested.name == "OUTPUT0"
            assert h.core.client.arena.stats()["live"] == 0        # inputs freed on Response
            assert h.core.in_flight == 1
            result.release()
            result.release()                                  # idempotent
            # Releases go to the scheduler, which hands them to that worker
            # with its next Execute (no extra message, no extra wake-up).
            rel = await asyncio.wait_for(h.sched.get(), 5)
            assert rel == messages.Release(h.worker_addr, [(r.region, r.offset) for r in refs])
            assert h.core.in_flight == 0
            await asyncio.sleep(0.05)
            assert h.sched.empty() and h.worker.empty()
    run(body())


def test_error_response_raises(harness):
    async def body():
        async with harness() as h:
            task = asyncio.create_task(h.core.infer(simple(int_input("INPUT0"), int_input("INPUT1"))))
            msg = await h.next_request()
            h.respond(msg.rid, error=messages.ErrorInfo(int(Code.UNAVAILABLE), "queue full"))
            with pytest.raises(TritonError) as e:
                await task
            assert e.value.code == Code.UNAVAILABLE and e.value.message == "queue full"
            assert h.core.client.arena.stats()["live"] == 0
    run(body())


def test_cancel_posts_cancel_and_frees_only_on_response(harness):
    async def body():
        async with harness() as h:
            task = asyncio.create_task(h.core.infer(simple(int_input("INPUT0"), int_input("INPUT1"))))
            msg = await h.next_request()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            cancel = await h.next_request()
            assert cancel == messages.Cancel(h.core.address, msg.rid)
            assert h.core.client.arena.stats()["live"] == 1        # a worker may still read it
            ref = h.output("OUTPUT0", np.zeros(16, np.int32))
            h.respond(msg.rid, [ref])
            rel = await asyncio.wait_for(h.sched.get(), 5)    # nobody will read: released
            assert rel.slots == [(ref.region, ref.offset)]
            assert h.core.client.arena.stats()["live"] == 0 and h.core.in_flight == 0
    run(body())


def test_small_inputs_of_a_request_share_one_slot_and_big_ones_do_not(harness):
    async def body():
        async with harness() as h:
            a, b = int_input("INPUT0", start=1), int_input("INPUT1", start=100)
            task = asyncio.create_task(h.core.infer(simple(a, b)))
            msg = await h.next_request()
            assert h.core.client.arena.stats()["live"] == 1
            r0, r1 = msg.inputs
            assert r0.region == r1.region and r1.offset == r0.offset + 64
            assert r0.offset % 64 == 0 and (r0.nbytes, r1.nbytes) == (64, 64)
            assert bytes(h.cache.buffer(r0.region, r0.offset, r0.nbytes)) == a.data
            assert bytes(h.cache.buffer(r1.region, r1.offset, r1.nbytes)) == b.data
            h.respond(msg.rid, [h.output("OUTPUT0", np.zeros(16, np.int32))])
            (await task).release()
            assert h.core.client.arena.stats()["live"] == 0
            wide = TOGETHER_BELOW // 8 + 16         # FP32 [2, wide]: past the shared slot's limit
            task = asyncio.create_task(h.core.infer(InferRequest("strings", inputs=[
                InputTensor("IN", "BYTES", [0], b""),
                InputTensor("OPT", "FP32", [2, wide], bytes(8 * wide))])))
            msg = await h.next_request()
            assert h.core.client.arena.stats()["live"] == 2
            h.respond(msg.rid)
            (await task).release()
            assert h.core.client.arena.stats()["live"] == 0
    run(body())


def test_classification(harness):
    async def body():
        async with harness() as h:
            req = InferRequest("strings", inputs=[InputTensor("IN", "BYTES", [0], b"")],
                               outputs=[RequestedOutput("SCORES", classification=2)])
            task = asyncio.create_task(h.core.infer(req))
            msg = await h.next_request()
            h.respond(msg.rid, [h.output("SCORES", np.array([0.1, 3.3, 0.2, 1.5], np.float32))])
            result = await task
            out = result.outputs[0]
            assert (out.datatype, out.shape) == ("BYTES", [2])
            assert out.as_numpy().tolist() == [b"3.300000:1", b"1.500000:3"]
            result.release()
    run(body())


def test_draining_refuses_and_stats_query(harness):
    async def body():
        async with harness() as h:
            stats = asyncio.create_task(h.core.control.model_statistics("simple"))
            q = await h.next_request()
            assert (type(q), q.name, q.version) == (messages.StatsQuery, "simple", "")
            h.outbox.post(h.core.address, messages.StatsAnswer(
                q.qid, {"model_stats": [{"name": "simple"}]}))
            assert (await stats) == {"model_stats": [{"name": "simple"}]}
            with pytest.raises(TritonError) as e:
                await h.core.control.model_statistics("nope")
            assert e.value.message == "requested model 'nope' is not available"
            h.core.control.draining = True
            for probe in (h.core.control.server_ready, h.core.control.server_live):
                with pytest.raises(TritonError) as e:     # Triton's IsReady/IsLive in a stop
                    probe()
                assert (e.value.code, e.value.message) == (Code.UNAVAILABLE, "Server exiting")
            with pytest.raises(TritonError) as e:
                await h.core.infer(simple())
            assert e.value.code == Code.UNAVAILABLE
    run(body())


def test_control_plane_answers(harness):
    async def body():
        async with harness() as h:
            core = h.core
            md = core.control.model_metadata("simple")
            assert md == {"name": "simple", "versions": ["1"], "platform": "onnxruntime",
                          "inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]},
                                     {"name": "INPUT1", "datatype": "INT32", "shape": [-1, 16]}],
                          "outputs": [{"name": "OUTPUT0", "datatype": "INT32", "shape": [-1, 16]},
                                      {"name": "OUTPUT1", "datatype": "INT32", "shape": [-1, 16]}]}
            assert json.loads(core.control.model_config("simple"))["max_batch_size"] == 8
            assert await core.control.model_ready("simple")
            assert not await core.control.model_ready("simple", "3")
            assert core.control.server_metadata()["version"] == "2.51.0"
            assert core.control.repository_index() == [
                {"name": "simple", "version": "1", "state": "READY"},
                {"name": "strings", "version": "1", "state": "READY"}]
            with pytest.raises(TritonError) as e:
                await core.control.load_model("simple", {})
            assert e.value.code == Code.UNAVAILABLE and "polling" in e.value.message
            assert core.shm.system_shm_status() == [] and core.shm.cuda_shm_status() == []
            with pytest.raises(TritonError) as e:
                await core.shm.register_system_shm("r", "/k", 0, 8)
            assert e.value.code == Code.UNSUPPORTED
    run(body())


def test_no_segments_left_behind(harness):
    sids = []

    async def body():
        async with harness() as h:
            sids.append(h.sid)
            task = asyncio.create_task(h.core.infer(simple(int_input("INPUT0"), int_input("INPUT1"))))
            msg = await h.next_request()
            h.respond(msg.rid)
            await task
    run(body())
    assert leaked_segments(sids[0]) == []


def test_inbox_answers_unknown_and_keeps_the_good_message(harness):
    import socket

    import msgspec

    from tritond.channel import frame

    async def body():
        async with harness() as h:
            stats = asyncio.create_task(h.core.control.model_statistics("simple"))
            q = await h.next_request()
            garbage = msgspec.Raw(msgspec.msgpack.encode([999, "junk"]))
            wrong = messages.Cancel(frontend=h.sched_addr, rid=1)     # the scheduler's
            good = messages.StatsAnswer(q.qid, {"model_stats": [{"name": "simple"}]})
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:   # one frame
                sock.connect(h.core.address)
                sock.sendall(frame(messages.encode([garbage, wrong, good])))
                assert (await stats) == {"model_stats": [{"name": "simple"}]}
                unknown = [await h.next_request(), await h.next_request()]
            details = sorted(m.detail for m in unknown)
            assert [type(m) for m in unknown] == [messages.Unknown] * 2
            assert details[0].startswith("undecodable message")
            assert details[1] == "unexpected Cancel message for the frontend-0 process"
    run(body())


def test_stream_results_then_final_and_ordering_on_the_final(harness):
    """infer_stream yields every result; preserve_ordering holds back only final ones."""
    ordered = dict(CONFIGS["simple"], name="ordered",
                   dynamic_batching={"preserve_ordering": True})

    async def body():
        async with harness() as h:
            h.core.on_messages([table(extra=[messages.ModelEntry(
                "ordered", 1, "READY", spec=spec_from_dict(ordered))])])
            got = []

            async def run_one(tag):
                req = InferRequest("ordered", inputs=[int_input("INPUT0"), int_input("INPUT1")])
                async for result in h.core.infer_stream(req):
                    got.append((tag, int(result.outputs[0].as_numpy()[0, 0]), result.final))
                    result.release()

            first = asyncio.create_task(run_one("a"))
            msg_a = await h.next_request()
            second = asyncio.create_task(run_one("b"))
            msg_b = await h.next_request()
            out = np.zeros((1, 16), np.int32)
            h.respond(msg_b.rid, [h.output("OUTPUT0", out + 1)])       # b's final: waits
            h.outbox.post(h.core.address, messages.Response(
                msg_a.rid, outputs=[h.output("OUTPUT0", out + 2)], instance=h.worker_addr,
                final=False))                                             # a's first: passes
            await asyncio.sleep(0.05)
            assert got == [("a", 2, False)]
            # a's inputs until its final; b's until its held final is delivered (one slot each)
            assert h.core.client.arena.stats()["live"] == 2
            h.respond(msg_a.rid, [h.output("OUTPUT0", out + 3)])
            await asyncio.wait_for(asyncio.gather(first, second), 5)
            assert got == [("a", 2, False), ("a", 3, True), ("b", 1, True)]
            assert h.core.client.arena.stats()["live"] == 0 and h.core.in_flight == 0
    run(body())


def test_stream_closed_early_cancels(harness):
    async def body():
        async with harness() as h:
            results = h.core.infer_stream(simple(int_input("INPUT0"), int_input("INPUT1")))
            task = asyncio.create_task(results.__anext__())
            msg = await h.next_request()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await h.next_request() == messages.Cancel(h.core.address, msg.rid)
            h.respond(msg.rid)
            await asyncio.sleep(0.05)
            assert h.core.client.arena.stats()["live"] == 0 and h.core.in_flight == 0
    run(body())


def test_a_sequence_models_requests_of_one_turn_leave_as_one_frame(harness):
    """A sequence model's steps (ModelVersion.sequence) go through post_batched: of the
    requests started in one turn, the first goes at once and the rest in one frame,
    not cut at frame_limit (each cut would reach the sequence batcher as a batch of its
    own); a model without sequence batching keeps the cut."""
    seq = messages.ModelEntry("seq", 1, "READY", spec=spec_from_dict({
        **CONFIGS["simple"], "name": "seq", "sequence_batching": {"direct": {}}}))

    async def frames_for(h, model, n):
        sched = h.sched_addr
        written = []
        real = h.outbox._write
        h.outbox._write = lambda a, data: (written.append(data) if a == sched else None,
                                           real(a, data))
        tasks = [asyncio.create_task(h.core.infer(InferRequest(
            model, inputs=[int_input("INPUT0"), int_input("INPUT1")],
            parameters={"sequence_id": i + 1, "sequence_start": True}))) for i in range(n)]
        got = [await h.next_request() for _ in range(n)]
        for msg in got:
            h.respond(msg.rid)
        await asyncio.gather(*tasks)
        h.outbox._write = real
        return len(written), sorted(m.correlation_id for m in got)

    async def body():
        async with harness() as h:
            h.core.on_messages([table(extra=[seq])])
            assert h.core.models.resolve("seq", 0).sequence
            assert not h.core.models.resolve("simple", 0).sequence
            h.outbox.frame_limit = 2
            assert await frames_for(h, "seq", 7) == (2, list(range(1, 8)))
            assert await frames_for(h, "simple", 7) == (4, list(range(1, 8)))   # 1 + 2+2+2
    run(body())
