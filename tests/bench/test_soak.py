"""bench/soak.py: every scenario runs as expected against a real server, and a second
round of each leaves the server's /dev/shm segments, and the client regions, as they were."""
from __future__ import annotations

import pathlib
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import soak, soak_repo  # noqa: E402
from bench.soak_scenarios import SCENARIOS  # noqa: E402
from tests.server import Server  # noqa: E402


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server((soak_repo.write(tmp_path_factory.mktemp("soak")),), "--allow-client-shm=true")
    yield s
    s.stop()


def _settled(srv, timeout=10.0) -> dict:
    """A snapshot once no request is pending (a disconnected client's may still run)."""
    end = time.monotonic() + timeout
    while True:
        snap = soak.snapshot(srv)
        if snap["pending"] == 0 or time.monotonic() > end:
            return snap
        time.sleep(0.1)


def _client_regions() -> set[str]:
    return {p.name for p in pathlib.Path("/dev/shm").glob("soak-*")}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_answers_and_leaves_no_segment(srv, name):
    regions = _client_regions()
    assert SCENARIOS[name](srv, 24) == 24               # warm-up: arenas made on first use
    before = soak.snapshot(srv)
    assert SCENARIOS[name](srv, 24) == 24
    after = _settled(srv)
    assert after["shm"] == before["shm"]
    assert after["pending"] == 0
    assert _client_regions() == regions


def test_report_rows_flag_growth_only():
    procs = {"frontend-0[1]": {"rss_kb": 100, "fds": 10, "threads": 3, "maps": 50},
             "scheduler[2]": {"rss_kb": 100, "fds": 10, "threads": 3, "maps": 50}}
    grown = {"frontend-0[1]": {**procs["frontend-0[1]"], "fds": 12},
             "scheduler[2]": procs["scheduler[2]"]}
    snap = {"procs": procs, "shm": {"count": 1, "bytes": 4096}, "pending": 0, "cancelled": 0}
    end = {**snap, "procs": grown}
    rows = soak.report("x", 10_000, 10_000, 1.0, [snap, snap, end, end])
    assert rows[0].startswith("| x | frontend-0[1] | +0 / +0 | +2 / +4 |")
    assert len(rows) == 2 and "1 processes unchanged" in rows[1]
