"""JSON text spelled as Triton's writer spells it (rapidjson, through triton-common's
TritonJson): every HTTP answer body, the served model config, a Python model's
``request.parameters()``.

rapidjson escapes ``"``, ``\\`` and the control characters below 0x20 (the short forms
where JSON has one, else ``\\u00XX`` with upper-case hex, ``\\u001F``) and writes DEL and
non-ASCII characters as they are. msgspec and Python's ``json`` (``ensure_ascii=False``)
write the same text except for the hex case (``\\u001f``), so their output is mended
after the fact, only where it holds such an escape: one substring search otherwise.
"""
from __future__ import annotations

import json
import re

import msgspec

_encode = msgspec.json.encode
# An escaped backslash is matched as a whole so that the text ``\u001f`` (a backslash,
# written ``\\``, then ``u001f``) is left alone; only a real escape has hex to raise.
_ESCAPE_B = re.compile(rb"\\(?:\\|u00[01][0-9a-f])")
_ESCAPE_S = re.compile(r"\\(?:\\|u00[01][0-9a-f])")


def _upper_b(m: re.Match) -> bytes:
    s = m.group(0)
    return s if len(s) == 2 else s[:4] + s[4:].upper()


def _upper_s(m: re.Match) -> str:
    s = m.group(0)
    return s if len(s) == 2 else s[:4] + s[4:].upper()


def mend(data: bytes) -> bytes:
    """msgspec's JSON bytes with rapidjson's upper-case ``\\u00XX`` hex."""
    if b"\\u00" not in data:
        return data
    return _ESCAPE_B.sub(_upper_b, data)


def encode(obj) -> bytes:
    """``obj`` as compact JSON bytes, Triton's spelling (msgspec's types)."""
    return mend(_encode(obj))


def dumps(obj) -> str:
    """``obj`` as compact JSON text, Triton's spelling (``json``'s types)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if "\\u00" not in text:
        return text
    return _ESCAPE_S.sub(_upper_s, text)
