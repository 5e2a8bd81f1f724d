"""frontend/http/body.py: bounded, incremental body reading."""
import asyncio

import pytest

from tritond.errors import Code, TritonError
from tritond.frontend.http import body as body_mod
from tritond.frontend.http.body import TooLarge, read_body
from tritond.frontend.http.responses import error_response


def _receiver(chunks, disconnect=False):
    msgs = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)]
    if disconnect:
        msgs[-1]["more_body"] = True
        msgs.append({"type": "http.disconnect"})
    it = iter(msgs)

    async def receive():
        return next(it)
    return receive


def run(coro):
    return asyncio.run(coro)


def test_declared_over_limit_is_413_before_reading():
    async def never():
        raise AssertionError("the body was read")
    with pytest.raises(TooLarge) as e:
        run(read_body(b"1000", never, 999))
    assert e.value.code == Code.INVALID_ARG
    assert e.value.message == ("request body of 1000 bytes exceeds the maximum allowed input "
                               "size of 999 bytes. Use --http-max-input-size to increase the limit.")
    assert error_response(e.value).status_code == 413


def test_sized_body_in_chunks():
    chunks = [bytes([i]) * 100 for i in range(10)]
    assert bytes(run(read_body(b"1000", _receiver(chunks), 1000))) == b"".join(chunks)
    one = [b"x" * 5]
    assert run(read_body(b"5", _receiver(one), 1000)) == b"x" * 5


def test_buffer_reserved_only_after_an_eighth(monkeypatch):
    sizes = []
    real = bytearray

    class Spy(real):
        def __init__(self, *a):
            if a and isinstance(a[0], int):
                sizes.append(a[0])
            super().__init__(*a)
    monkeypatch.setattr(body_mod, "bytearray", Spy, raising=False)
    receive = _receiver([b"a" * 10, b"b" * 10], disconnect=True)
    with pytest.raises(TritonError) as e:
        run(read_body(b"1000000", receive, 1 << 30))     # 20 of a million bytes, then gone
    assert "client disconnected after 20 of 1000000 body bytes" in e.value.message
    assert sizes == []                                    # nothing of the declared size
    chunks = [b"c" * 200_000] * 5
    assert bytes(run(read_body(b"1000000", _receiver(chunks), 1 << 30))) == b"c" * 1_000_000
    assert sizes == [1_000_000]


@pytest.mark.parametrize("chunks, words", [
    ([b"x" * 10, b"y" * 10], "request body is longer than its Content-Length of 15 bytes"),
    ([b"x" * 5, b"y" * 5], "request body ended after 10 of its 15 bytes"),
])
def test_lying_lengths(chunks, words):
    with pytest.raises(TritonError) as e:
        run(read_body(b"15", _receiver(chunks), 1000))
    assert words in e.value.message
