"""bench/worker_path.py --loop and bench/worker_loop.py run on the checkout's add_sub."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPO = str(ROOT / "model_repository")

pytestmark = pytest.mark.timeout(180)


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args, "--repository", REPO], cwd=ROOT,
                          capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_worker_path_times_the_loop_turn_beside_the_warm_path():
    out = run("bench/worker_path.py", "--loop")
    m = re.search(r"path ([\d.]+) us, worker loop turn .* ([\d.]+) us, "
                  r"loop's own (-?[\d.]+) us per request", out)
    assert m, out
    path, turn = float(m.group(1)), float(m.group(2))
    assert 0 < path and 0 < turn


def test_worker_loop_drives_a_real_worker_one_request_at_a_time():
    before = set(os.listdir("/dev/shm"))
    out = run("bench/worker_loop.py", "--requests", "300")
    m = re.search(r"([\d.]+) us CPU per request \(([\d.]+) kernel\), (\S+) syscalls", out)
    assert m, out
    assert float(m.group(1)) >= float(m.group(2)) >= 0
    if m.group(3) != "nan":          # perf could attach: a wait, a read, two sends at least
        assert float(m.group(3)) >= 3.5
    # The worker shut down and unlinked its segments; the driver's arena is gone too. Only the
    # bench's own names ("b" + 10 hex digits) count: servers running beside it on the host
    # have 32-digit ids that can start with "b" as well.
    ours = re.compile(r"tritond-b[0-9a-f]{10}-")
    assert {n for n in set(os.listdir("/dev/shm")) - before if ours.match(n)} == set()
