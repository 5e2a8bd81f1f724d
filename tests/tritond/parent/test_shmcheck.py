"""The parent's start-up check that /dev/shm can hold the arenas, on a real small tmpfs."""
import os
import subprocess

import pytest

from tritond.options import Options
from tritond.parent.shmcheck import arena_space_warning

MiB = 1 << 20


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs: stands for a container's small /dev/shm."""
    path = tmp_path / "shm"
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_fits_says_nothing(small_tmpfs):
    opts = Options(input_arena_byte_size=1 * MiB, output_arena_byte_size=MiB // 2)
    assert arena_space_warning(opts, frontends=1, workers=4, path=small_tmpfs) is None


def test_too_small_gives_one_actionable_line(small_tmpfs):
    opts = Options(input_arena_byte_size=64 * MiB, output_arena_byte_size=16 * MiB)
    msg = arena_space_warning(opts, frontends=1, workers=3, path=small_tmpfs)
    assert msg is not None and "\n" not in msg
    assert small_tmpfs in msg and "4.0 MiB free" in msg and "112.0 MiB" in msg
    for hint in ("--shm-size=", "medium: Memory", "sizeLimit", "remount,size=",
                 "--input-arena-byte-size=67108864 x 1 frontend",
                 "--output-arena-byte-size=16777216 x 3 worker"):
        assert hint in msg, hint


def test_counts_what_is_already_used(small_tmpfs):
    with open(os.path.join(small_tmpfs, "filler"), "wb") as f:
        f.write(b"\0" * (3 * MiB))
    opts = Options(input_arena_byte_size=2 * MiB, output_arena_byte_size=0)
    msg = arena_space_warning(opts, frontends=1, workers=1, path=small_tmpfs)
    assert msg is not None and "1.0 MiB free" in msg
