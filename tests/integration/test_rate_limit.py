"""--rate-limit=execution_count on a real tritond: a global resource serialises two models;
a model asking for more than --rate-limit-resource allows fails to load with Triton's reason
(qa/L0_rate_limiter)."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import tritonclient.http as httpclient

from tests.integration.sched_repo import events, write_repo
from tests.integration.test_batching import http_infer
from tests.server import Server

SLEEP_MS = 300
LIMITED = ('instance_group [ { kind: KIND_CPU count: 1 rate_limiter { resources [ '
           '{ name: "R" global: true count: 1 } ] priority: 1 } } ]')


# more of R than --rate-limit-resource=R:1 allows; S, which no flag names (so 0 of it)
GREEDY = LIMITED.replace("count: 1 } ]", "count: 4 } ]")
UNNAMED = LIMITED.replace('name: "R" global: true', 'name: "S"')


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("ratelimit")
    groups = {"ra": LIMITED, "rb": LIMITED, "greedy": GREEDY, "unnamed": UNNAMED}
    repo = write_repo(root, {n: {"max_batch": 1, "sleep_ms": SLEEP_MS} for n in groups})
    for name, group in groups.items():
        cfg = repo / name / "config.pbtxt"
        cfg.write_text(cfg.read_text().replace(
            "instance_group [ { kind: KIND_CPU count: 1 } ]", group))
    srv = Server([repo], "--rate-limit=execution_count", "--rate-limit-resource=R:1",
                 "--strict-readiness=false")
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


def test_a_model_needing_more_than_the_resource_flags_allow_fails_to_load(env):
    srv, _ = env
    c = httpclient.InferenceServerClient(srv.url)
    try:
        index = {m["name"]: m for m in c.get_model_repository_index()}
    finally:
        c.close()
    assert index["ra"]["state"] == index["rb"]["state"] == "READY"
    limit = ('Resource count for "{}" is limited to {} which will prevent scheduling of one '
             'or more model instances, the minimum required count is {}')
    assert index["greedy"]["state"] == "UNAVAILABLE"
    assert index["greedy"]["reason"] == limit.format("R", 1, 4)
    assert index["unnamed"]["reason"] == limit.format("S", 0, 1)
