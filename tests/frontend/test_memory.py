"""frontend/memory.py: the heap policy switches on under glibc and trimming is safe."""
import platform

import pytest

from tritond.frontend import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_then_release():
    assert memory.keep_freed_memory() is True
    big = bytearray(80 << 20)        # over glibc's default mmap threshold: now from the heap
    del big
    memory.release_free_memory()     # gives it back; must not fail when there is nothing left
    memory.release_free_memory()
