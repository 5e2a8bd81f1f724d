"""Fixtures for shm tests: a unique server id per test, and a check that nothing leaks."""
import secrets

import pytest

from tritond.shm.region import list_segments, unlink


@pytest.fixture
def server_id():
    """A fresh server id; fails the test if any of its segments is left in /dev/shm."""
    sid = "test" + secrets.token_hex(4)
    yield sid
    left = list_segments(sid)
    for name in left:
        unlink(name)
    assert not left, f"segments leaked: {left}"
