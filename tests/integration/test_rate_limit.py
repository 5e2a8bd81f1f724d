"""--rate-limit=execution_count on a real tritond: a global resource serialises two models."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.sched_repo import events, write_repo
from tests.integration.test_batching import http_infer
from tests.server import Server

SLEEP_MS = 300
LIMITED = ('instance_group [ { kind: KIND_CPU count: 1 rate_limiter { resources [ '
           '{ name: "R" global: true count: 1 } ] priority: 1 } } ]')


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("ratelimit")
    repo = write_repo(root, {n: {"max_batch": 1, "sleep_ms": SLEEP_MS} for n in ("ra", "rb")})
    for name in ("ra", "rb"):
        cfg = repo / name / "config.pbtxt"
        cfg.write_text(cfg.read_text().replace(
            "instance_group [ { kind: KIND_CPU count: 1 } ]", LIMITED))
    srv = Server([repo], "--rate-limit=execution_count")
    yield srv, root
    srv.stop()


def test_one_resource_lets_one_model_execute_at_a_time(env):
    srv, root = env
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(http_infer, srv, name) for name in ("ra", "rb", "ra", "rb")]
        for call in calls:
            call.result()
    spans = sorted(e["t"] for name in ("ra", "rb") for e in events(root, name)
                   if e["event"] == "exec")
    assert len(spans) == 4
    gaps = [b - a for a, b in zip(spans, spans[1:])]
    assert min(gaps) >= SLEEP_MS / 1000 * 0.9, gaps     # never two executions at once
