"""Raw ASGI responses for the infer path and Triton-shaped error/JSON bodies."""
from __future__ import annotations

from starlette.responses import Response

from tritond.errors import TritonError, http_status

from ..types import InferResult
from .codec import encode_json
from .compression import UnsupportedEncoding, compress

JOIN_BELOW = 64 << 10    # smaller bodies go out as one write; bigger ones as separate chunks
_JSON = (b"content-type", b"application/json")
_OCTET = (b"content-type", b"application/octet-stream")
_JSON_FIELDS = b"content-type: application/json\r\ncontent-length: %d\r\n"
_OCTET_FIELDS = (b"content-type: application/octet-stream\r\ninference-header-content-length: %d"
                 b"\r\ncontent-length: %d\r\n")


def json_response(doc, status: int = 200) -> Response:
    return Response(encode_json(doc), status, media_type="application/json")


# Triton's health handlers and its unknown-route answer set no content type; its HTTP
# library (libevhtp) then sends text/plain, whatever the body (a JSON error too).
PLAIN = {"content-type": "text/plain"}


def empty_response(status: int = 200) -> Response:
    """Health answers: an empty body, text/plain (Triton's)."""
    return Response(b"", status, headers=PLAIN)


def plain_error(message: str, status: int) -> Response:
    """Triton's error object where Triton sets no content type (``PLAIN``)."""
    return Response(encode_json({"error": message}), status, headers=PLAIN)


def error_response(exc: TritonError) -> Response:
    status = getattr(exc, "http_status", 0) or http_status(exc.code)   # 413: body.TooLarge
    if getattr(exc, "plain", False):       # fastpath.plain
        resp = plain_error(exc.message, status)
    else:
        resp = json_response({"error": exc.message}, status)
    if isinstance(exc, UnsupportedEncoding):
        resp.headers["Accept-Encoding"] = "gzip, deflate"
    return resp


class InferResponse:
    """Writes the JSON header and each binary output straight from shared memory.

    ``result.release()`` runs once the body has left the process (the server's
    ``tritond.after_sent`` extension, ``protocol.py``) or the send failed, so the
    worker may then reuse the output slots; without the extension, once the
    body is handed to the server.
    """

    __slots__ = ("header", "blobs", "result", "encoding")

    def __init__(self, header: bytes, blobs: list, result: InferResult, encoding: str | None):
        self.header = header
        self.blobs = blobs
        self.result = result
        self.encoding = encoding

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self._send(send)
        finally:
            after_sent = scope.get("extensions", {}).get("tritond.after_sent")
            if after_sent is None:
                self.result.release()
            else:
                after_sent(self.result.release)

    def fields(self) -> tuple[bytes, int]:
        """(the head's header lines, body length) of an answer without ``encoding``:
        the lines ``_send`` gives as ASGI headers, in the same order."""
        header, blobs = self.header, self.blobs
        if not blobs:
            return _JSON_FIELDS % len(header), len(header)
        total = len(header) + sum(map(len, blobs))
        return _OCTET_FIELDS % (len(header), total), total

    async def _send(self, send) -> None:
        header, blobs = self.header, self.blobs
        headers = [_OCTET if blobs else _JSON]
        if blobs:
            headers.append((b"inference-header-content-length", b"%d" % len(header)))
        chunks = [header, *blobs]
        if self.encoding is not None:
            chunks = [compress(chunks, self.encoding)]
            headers.append((b"content-encoding", self.encoding.encode()))
        total = sum(len(c) for c in chunks)
        headers.append((b"content-length", b"%d" % total))
        if total < JOIN_BELOW and len(chunks) > 1:
            chunks = [b"".join(chunks)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < last})
