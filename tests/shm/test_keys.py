import os

import posix_ipc
import pytest

from tritond.errors import Code, TritonError
from tritond.shm.keys import NAME_MAX, check_key, is_server_segment
from tritond.shm.region import Segment, segment_name


@pytest.mark.parametrize("key, words", [
    ("a\0b", "must not contain a NUL character"),
    ("/a/b", "must be one name with an optional leading '/'"),
    ("..", "must be one name"),
    ("/", "must be one name"),
    ("//x", "must be one name"),
    ("x" * (NAME_MAX + 1), f"longer than {NAME_MAX} bytes"),
    ("/tritond-0123-1-frontend-0", "is reserved for the server's own memory"),
    ("tritond-anything", "is reserved for the server's own memory"),
    ("", "Unable to parse 'key'"),
    (5, "Unable to parse 'key'"),
])
def test_bad_keys(key, words):
    with pytest.raises(TritonError) as e:
        check_key(key)
    assert e.value.code == Code.INVALID_ARG and words in e.value.message


def test_good_keys():
    assert check_key("abc") == "/abc"
    assert check_key("/abc") == "/abc"
    assert check_key("x" * NAME_MAX) == "/" + "x" * NAME_MAX


def test_server_segment_under_another_name(server_id):
    seg = Segment.create(segment_name(server_id, "linked"), 4096)
    alias = f"/client-alias-{os.getpid()}"
    os.link("/dev/shm" + seg.name, "/dev/shm" + alias)
    other = posix_ipc.SharedMemory(f"/client-other-{os.getpid()}", posix_ipc.O_CREX, size=64)
    try:
        shm = posix_ipc.SharedMemory(alias, 0)
        assert is_server_segment(shm.fd)
        shm.close_fd()
        assert not is_server_segment(other.fd)
    finally:
        other.close_fd()
        other.unlink()
        os.unlink("/dev/shm" + alias)
        seg.unlink()
        seg.close()
