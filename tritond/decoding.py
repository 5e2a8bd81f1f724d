"""Decoding an inbox's frames: fast as a whole, message by message on error.

A frame is one msgpack list of messages. The whole frame is decoded with the
inbox's closed set first (the common case, one C call). Only when that fails
is it split into its elements (``msgspec.Raw``) and each decoded on its own,
so that one bad message never drops its neighbours. A bad message is reported
as ``Bad(detail, sender)``: the receiver logs it and answers
``messages.Unknown(detail)`` to ``sender`` when the sender is known, either
named by the message itself (a message of another role's set decodes with
``messages.ANY``) or learnt from earlier messages on the same connection
(one connection carries one peer's frames).
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import msgspec

from . import messages

log = logging.getLogger("tritond.channel")


class Bad(NamedTuple):
    detail: str
    sender: str          # "" when unknown


class InboxDecoder:
    """Decodes frames for the closed set ``union`` of the inbox of ``role``."""

    __slots__ = ("role", "decode", "_one", "_raw", "_any")

    def __init__(self, union, role: str = "") -> None:
        self.role = role
        # decode(payload): the whole frame's messages, or msgspec.MsgspecError if
        # any is bad. The decoder's own method: no Python call on the hot path.
        self.decode = msgspec.msgpack.Decoder(list[union]).decode
        self._one = msgspec.msgpack.Decoder(union)
        self._raw = msgspec.msgpack.Decoder(list[msgspec.Raw])
        self._any = msgspec.msgpack.Decoder(messages.ANY)

    def split(self, payload, peer: str = "") -> tuple[list, list[Bad]]:
        """Message by message: (the good messages, a Bad per bad one)."""
        try:
            raws = self._raw.decode(payload)
        except msgspec.MsgspecError as exc:
            return [], [Bad(f"undecodable frame: {exc}", peer)]
        good: list = []
        bad: list[tuple[str, str]] = []
        for raw in raws:
            try:
                good.append(self._one.decode(raw))
                continue
            except msgspec.MsgspecError as exc:
                detail = str(exc)
            try:
                other = self._any.decode(raw)
            except msgspec.MsgspecError:
                bad.append((f"undecodable message: {detail}", ""))
                continue
            bad.append((f"unexpected {type(other).__name__} message for the "
                        f"{self.role or 'receiving'} process", messages.sender(other)))
        peer = (peer or next((s for m in good if (s := messages.sender(m))), "")
                or next((who for _, who in bad if who), ""))
        return good, [Bad(detail, who or peer) for detail, who in bad]


def report(bad: list[Bad], post, where: str) -> None:
    """Log each bad message and answer Unknown to its sender when known.

    ``post(address, message)`` is the receiver's outbox (None: log only)."""
    for item in bad:
        log.error("%s: %s%s", where, item.detail,
                  f" (from {item.sender.replace(chr(0), '@')})" if item.sender else "")
        if post is not None and item.sender:
            post(item.sender, messages.Unknown(item.detail))
