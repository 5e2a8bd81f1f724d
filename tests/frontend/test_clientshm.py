"""FrontendCore's client shm registry: the switch, the refs it sends, and when it says Forget.

A real core over real channels (tests/frontend/harness.py) and real POSIX
segments; the test plays the scheduler and a worker that decodes TO_WORKER.
"""
from __future__ import annotations

import asyncio
import mmap
import struct
import uuid

import posix_ipc
import pytest

from tritond import channel, messages
from tritond.errors import Code, TritonError
from tritond.frontend.clientshm import SHM_DISABLED
from tritond.frontend.types import InferRequest, InputTensor, RequestedOutput, ShmRef

from .harness import int_input


@pytest.fixture
def segment():
    key = f"/cshm_unit_{uuid.uuid4().hex[:8]}"
    seg = posix_ipc.SharedMemory(key, posix_ipc.O_CREX, size=4096)
    seg.close_fd()
    yield key
    seg.unlink()


def test_disabled_switch(harness, segment):
    async def body():
        async with harness({"allow_client_shm": False}) as h:
            for call in (lambda: h.core.shm.register_system_shm("r", segment, 0, 64),
                         lambda: h.core.shm.unregister_system_shm(),
                         lambda: h.core.shm.register_cuda_shm("g", b"\0" * 64, 0, 64)):
                with pytest.raises(TritonError) as e:
                    await call()
                assert (e.value.code, e.value.message) == (Code.UNSUPPORTED, SHM_DISABLED)
            assert h.core.shm.system_shm_status() == [] and h.core.shm.cuda_shm_status() == []
            assert "system_shared_memory" not in h.core.control.server_metadata()["extensions"]
            t = InputTensor("INPUT0", "INT32", [1, 16], shm=ShmRef("r", 0, 64))
            with pytest.raises(TritonError) as e:
                await h.core.infer(InferRequest("simple", inputs=[t, int_input("INPUT1")]))
            assert e.value.code == Code.UNSUPPORTED
    asyncio.run(body())


def test_refs_and_forget_after_last_use(harness, segment):
    """Unregister during a request: Forget reaches the worker only after its Response."""
    async def body():
        async with harness({"allow_client_shm": True}) as h:
            worker = channel.address(h.sid, "w1")
            got: asyncio.Queue = asyncio.Queue()
            inbox = channel.AsyncInbox(worker, messages.TO_WORKER,
                                       lambda msgs: [got.put_nowait(m) for m in msgs])
            await inbox.start()
            try:
                await h.core.shm.register_system_shm("r", segment, 1024, 2048)
                t = InputTensor("INPUT0", "INT32", [1, 16], shm=ShmRef("r", 128, 64))
                outs = [RequestedOutput("OUTPUT0", shm=ShmRef("r", 512, 64))]
                task = asyncio.ensure_future(h.core.infer(
                    InferRequest("simple", inputs=[t, int_input("INPUT1")], outputs=outs)))
                req = await h.next_request()
                ref, dest = req.inputs[0], req.outputs[0].dest
                assert (ref.kind, ref.region, ref.offset, ref.nbytes) == (
                    messages.CLIENT_SHM, segment, 1024 + 128, 64)
                assert (dest.region, dest.offset, dest.nbytes, dest.gen) == (
                    segment, 1024 + 512, 64, ref.gen)
                await h.core.shm.unregister_system_shm("r")
                # Still listed while in use (Triton's awaiting unregistration), but the
                # name is free again: the new registration shadows it.
                assert [r["name"] for r in h.core.shm.system_shm_status()] == ["r"]
                await h.core.shm.register_system_shm("r", segment, 0, 64)
                assert h.core.shm.system_shm_status()[0]["byte_size"] == 64
                assert h.core.shm._regions["r"].gen != ref.gen
                await asyncio.sleep(0.2)
                assert got.empty()                                  # still in use
                out = messages.TensorRef("OUTPUT0", "INT32", [1, 16], segment, 1024 + 512, 64,
                                         messages.CLIENT_SHM, gen=ref.gen)
                h.outbox.post(h.core.address, messages.Response(req.rid, outputs=[out],
                                                                instance=worker))
                result = await asyncio.wait_for(task, 5)
                assert result.outputs[0].data is None
                forget = await asyncio.wait_for(got.get(), 5)
                assert forget == messages.Forget([(segment, ref.gen)])
            finally:
                inbox.close()
    asyncio.run(body())


def test_bytes_input_framing_checked_in_place(harness, segment):
    async def body():
        async with harness({"allow_client_shm": True}) as h:
            shm = posix_ipc.SharedMemory(segment)
            with mmap.mmap(shm.fd, 4096) as mm:
                shm.close_fd()
                mm[:8] = struct.pack("<I", 5) + b"abcd"      # claims 5 bytes, holds 4
                await h.core.shm.register_system_shm("s", segment, 0, 4096)
                t = InputTensor("IN", "BYTES", [1], shm=ShmRef("s", 0, 8))
                with pytest.raises(TritonError) as e:
                    await h.core.infer(InferRequest("strings", inputs=[t]))
                assert e.value.code == Code.INVALID_ARG
                assert "incomplete string for inference input 'IN'" in e.value.message
                assert h.core.shm._regions["s"].uses == 0
    asyncio.run(body())


def test_register_bounds_are_overflow_safe(harness, segment):
    async def body():
        async with harness({"allow_client_shm": True}) as h:
            for offset, size in ((4096, 1), (1, 4096), (2 ** 63, 2 ** 63), (0, 2 ** 64)):
                with pytest.raises(TritonError) as e:
                    await h.core.shm.register_system_shm("b", segment, offset, size)
                assert e.value.code == Code.INVALID_ARG, e.value
            with pytest.raises(TritonError) as e:
                await h.core.shm.register_system_shm("b", segment, -1, 16)
            assert e.value.message == "Unable to parse 'offset'"
            await h.core.shm.register_system_shm("b", segment, 4095, 1)
            assert h.core.shm.system_shm_status("b") == [
                {"name": "b", "key": segment, "offset": 4095, "byte_size": 1}]
    asyncio.run(body())
