"""One re-armable wake-up at an absolute ``time.monotonic_ns()`` deadline.

Queue delay windows are often ~100 µs, but event-loop timers have millisecond
granularity (libuv truncates, so uvloop spins; asyncio rounds up, adding up to
1 ms of latency). A Linux timerfd armed with an absolute CLOCK_MONOTONIC
deadline wakes the loop at the right microsecond without spinning. Python
3.11 has no ``os.timerfd_*``, so it is reached through ctypes; where that is
unavailable the alarm falls back to ``loop.call_at``.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
from typing import Callable

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.timerfd_create.restype = ctypes.c_int
        libc.timerfd_settime.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


class Alarm:
    """Calls ``callback()`` on ``loop`` once the armed deadline has passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._armed: int | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._libc = _libc()
        self._fd = -1
        if self._libc is not None:
            fd = self._libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._spec = _Itimerspec()
                loop.add_reader(fd, self._fired)

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    def set(self, deadline_ns: int | None) -> None:
        """Arm for ``deadline_ns`` (None disarms); a no-op when unchanged (no syscall)."""
        if deadline_ns == self._armed:
            return
        self._armed = deadline_ns
        if self._fd >= 0:
            spec = self._spec
            value = max(deadline_ns or 0, 0)
            if deadline_ns is not None and value == 0:
                value = 1        # 0 would disarm; 1 ns is long past: fire now
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(value, 1_000_000_000)
            self._libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None)
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if deadline_ns is not None:
            # loop.time() is time.monotonic() for both asyncio and uvloop.
            self._handle = self._loop.call_at(deadline_ns / 1e9, self._fired)

    def _fired(self) -> None:
        if self._fd >= 0:
            try:
                os.read(self._fd, 8)
            except BlockingIOError:
                return       # spurious: re-armed after the expiry was queued
        self._handle = None
        self._armed = None
        self._callback()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._handle is not None:
            self._handle.cancel()
