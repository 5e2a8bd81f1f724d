"""Segments: create/attach/close/unlink, naming, orphan reaping, free-space check."""
import multiprocessing
import os
import time

import pytest

from tests.shm import shm_children
from tritond.errors import Code, TritonError
from tritond.shm.region import (Segment, check_space, list_segments, live_servers, reap_orphans,
                                segment_name, shm_free_bytes)

spawn = multiprocessing.get_context("spawn")


def test_segment_name():
    assert segment_name("abc", "in-x3", pid=42) == "/tritond-abc-42-in-x3"
    assert segment_name("abc", "in") == f"/tritond-abc-{os.getpid()}-in"
    for sid, tag in [("a-b", "in"), ("", "in"), ("a/b", "in"), ("ab", ""), ("ab", "x/y")]:
        with pytest.raises(TritonError):
            segment_name(sid, tag)


def test_create_attach_close_unlink(server_id):
    name = segment_name(server_id, "s")
    seg = Segment.create(name, 10000, reserve=True)
    seg.buf[:3] = b"abc"
    with pytest.raises(TritonError) as e:
        Segment.create(name, 10)
    assert e.value.code == Code.ALREADY_EXISTS
    other = Segment.attach(name)
    assert other.size == 10000 and bytes(other.buf[:3]) == b"abc"
    ro = Segment.attach(name, 5, writable=False)
    assert ro.size == 5 and ro.buf.readonly
    with pytest.raises(TritonError) as e:
        Segment.attach(name, 10001)            # past the end would SIGBUS
    assert e.value.code == Code.INVALID_ARG and "a server buffer is 10000 bytes" in e.value.message
    view = other.buf[0:3]
    other.close()                              # an exported view must not make this crash
    assert bytes(view) == b"abc"
    other.close()
    ro.close()
    seg.unlink()
    seg.unlink()                               # idempotent
    seg.close()
    with pytest.raises(TritonError) as e:
        Segment.attach(name)
    # a server segment that is gone (reload, restart) is UNAVAILABLE and never named
    assert (e.value.code, e.value.message) == (
        Code.UNAVAILABLE, "a server buffer is no longer available; retry")
    with pytest.raises(TritonError) as e:
        Segment.attach("/not-ours-" + name.lstrip("/"))
    assert e.value.code == Code.INVALID_ARG and "unable to open shared memory region" in e.value.message
    with pytest.raises(TritonError):
        Segment.create(name, 0)


def _spawn(target, *args):
    parent, child = spawn.Pipe()
    proc = spawn.Process(target=target, args=(*args, child))
    proc.start()
    return proc, parent


def test_reap_orphans(server_id):
    mine = Segment.create(segment_name(server_id, "mine"), 4096)
    first, first_conn = _spawn(shm_children.holder, server_id, "orphan")
    orphan = first_conn.recv()
    live, live_conn = _spawn(shm_children.holder, server_id, "held")
    held = live_conn.recv()
    try:
        assert set(list_segments(server_id)) == {mine.name, orphan, held}
        assert reap_orphans(f"tritond-{server_id}-") == []     # every owner is alive
        first_conn.send("go")
        first.join(30)
        # Any tritond starting on this host meanwhile reaps every dead owner's segments,
        # this orphan included: the owner dies only now to keep that window small.
        assert reap_orphans(f"tritond-{server_id}-") in ([orphan], [])
        assert set(list_segments(server_id)) == {mine.name, held}
        live_conn.send("go")
        live.join(30)
        assert reap_orphans(f"/tritond-{server_id}-") in ([held], [])
        assert list_segments(server_id) == [mine.name]
    finally:
        mine.unlink()
        mine.close()


def test_a_running_servers_segments_are_left_to_it(server_id):
    """Its parent listening on @tritond-<id>-parent means the server runs: a dead owner's
    segment is its to unlink (later, on purpose), not another starting server's."""
    import socket

    parent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        parent.bind(f"\0tritond-{server_id}-parent")     # first: a server starting on this
        parent.listen()                                  # host meanwhile must leave it too
        first, first_conn = _spawn(shm_children.holder, server_id, "retired")
        orphan = first_conn.recv()
        first_conn.send("go")
        first.join(30)
        assert server_id in live_servers()
        assert reap_orphans(f"tritond-{server_id}-") == []
        assert orphan in list_segments(server_id)
    finally:
        parent.close()
    assert reap_orphans(f"tritond-{server_id}-") in ([orphan], [])   # or another start took it
    assert orphan not in list_segments(server_id)


def test_reap_recycled_pid(server_id):
    proc, conn = _spawn(shm_children.sleeper)
    pid = conn.recv()
    try:
        stale = Segment.create(segment_name(server_id, "stale", pid=pid), 64)
        fresh = Segment.create(segment_name(server_id, "fresh", pid=1), 64)   # pid 1 started long ago
        hour_ago = time.time() - 3600
        os.utime("/dev/shm" + stale.name, (hour_ago, hour_ago))   # older than the live pid
        assert reap_orphans(f"tritond-{server_id}-") == [stale.name]
        fresh.unlink()
    finally:
        conn.send("go")
        proc.join(30)


def test_free_space_check():
    free = shm_free_bytes()
    assert free > 0
    assert check_space(1) is None
    msg = check_space(free + (1 << 40))
    assert "\n" not in msg
    for word in ("/dev/shm", "free", "--shm-size=", "medium: Memory", "sizeLimit", "remount,size="):
        assert word in msg
