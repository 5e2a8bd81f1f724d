"""HTTP body compression: gzip / deflate / identity, both directions."""
from __future__ import annotations

import zlib

from tritond.errors import TritonError, invalid_arg, unsupported

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class UnsupportedEncoding(TritonError):
    """501 plus an ``Accept-Encoding: gzip, deflate`` response header."""

    def __init__(self) -> None:
        err = unsupported("Unsupported compression type")
        super().__init__(err.code, err.message)


def check_encoding(value: str | None) -> str | None:
    """The request's Content-Encoding as "gzip"/"deflate", or None for identity."""
    if not value or value == "identity":
        return None
    if value in _WBITS:
        return value
    raise UnsupportedEncoding()


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """Inflate a request body; more than ``limit`` bytes out is INVALID_ARG."""
    if not len(data):
        raise invalid_arg("nothing to be decompressed")          # Triton's DecompressData
    d = zlib.decompressobj(_WBITS[encoding])
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise invalid_arg(f"failed to decompress the request body ({encoding}): {e}") from None
    if len(out) > limit:
        raise invalid_arg(f"Decompressed data size exceeds the maximum allowed value of {limit} "
                          f"bytes. Use --http-max-input-size to increase the limit.")
    return out


def response_encoding(accept: str | None) -> str | None:
    """Highest-weighted of identity/deflate/gzip in Accept-Encoding (None = identity)."""
    if not accept:
        return None
    best, best_q = None, 0.0
    for part in accept.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if name not in ("gzip", "deflate", "identity"):
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = name, q
    return None if best == "identity" else best


def compress(chunks: list, encoding: str) -> bytes:
    """Compress the whole body (JSON + binary) in one stream."""
    c = zlib.compressobj(wbits=_WBITS[encoding])
    parts = [c.compress(chunk) for chunk in chunks]
    parts.append(c.flush())
    return b"".join(parts)
