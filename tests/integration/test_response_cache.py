"""The response cache on a real tritond: hits skip the model, statistics and metrics count them."""
import shutil
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration.sched_repo import events, write_repo
from tests.integration.test_batching import grpc_infer, http_infer
from tests.server import REPO, Server


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    repo = write_repo(root, {"cached": {"scheduling": "response_cache { enable: true }"},
                             "plain": {}})
    shutil.copytree(REPO / "simple_string", repo / "simple_string")
    cfg = repo / "simple_string" / "config.pbtxt"
    cfg.write_text(cfg.read_text() + "response_cache { enable: true }\n")
    srv = Server([repo], "--cache-config=local,size=1048576")
    yield srv, root
    srv.stop()


def execs(root, name):
    return len([e for e in events(root, name) if e["event"] == "exec"])


def stats(srv, name):
    c = httpclient.InferenceServerClient(srv.url)
    try:
        return c.get_inference_statistics(name)["model_stats"][0]
    finally:
        c.close()


def test_a_repeated_request_is_answered_from_the_cache(env):
    srv, root = env
    first = http_infer(srv, "cached", value=3.0)
    second = http_infer(srv, "cached", value=3.0)          # HTTP hit
    third = grpc_infer(srv, "cached", value=3.0)           # gRPC hit: the same cache
    assert execs(root, "cached") == 1
    for r in (second, third):
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), first.as_numpy("OUTPUT0"))
        np.testing.assert_array_equal(r.as_numpy("SEQ"), first.as_numpy("SEQ"))
    http_infer(srv, "cached", value=4.0)                   # other inputs: a miss
    assert execs(root, "cached") == 2
    inf = stats(srv, "cached")["inference_stats"]  # the miss's Executed is awaited
    assert inf["cache_hit"]["count"] == 2 and inf["cache_miss"]["count"] == 2
    assert inf["success"]["count"] == 4
    assert inf["queue"]["count"] == 4                      # a hit counts one, as Triton's
    assert stats(srv, "cached")["inference_count"] == 2    # executions only, as Triton
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
        text = r.read().decode()
    assert 'nv_cache_num_hits_per_model{model="cached",version="1"} 2' in text
    assert 'nv_cache_num_misses_per_model{model="cached",version="1"} 2' in text
    assert 'nv_cache_num_hits_per_model{model="plain"' not in text


def test_models_without_response_cache_always_run(env):
    srv, root = env
    http_infer(srv, "plain", value=5.0)
    http_infer(srv, "plain", value=5.0)
    assert execs(root, "plain") == 2
    assert stats(srv, "plain")["inference_stats"]["cache_hit"]["count"] == 0


def test_bytes_outputs_come_back_byte_for_byte(env):
    srv, _ = env
    data = np.array([["é".encode(), "日本".encode(), b"a\x00b"] + [b"x"] * 13], dtype=np.object_)
    c = grpcclient.InferenceServerClient(srv.grpc_url)
    try:
        inp = grpcclient.InferInput("INPUT0", [1, 16], "BYTES")
        inp.set_data_from_numpy(data)
        first = c.infer("simple_string", [inp]).as_numpy("OUTPUT0")
        again = c.infer("simple_string", [inp]).as_numpy("OUTPUT0")
    finally:
        c.close()
    assert first.tolist() == again.tolist()
    inf = stats(srv, "simple_string")["inference_stats"]
    assert inf["cache_hit"]["count"] == 1


def test_an_answer_bigger_than_the_cache_is_never_kept(env):
    # qa/L0_response_cache test_ensemble_cache_insertion_failure: two misses, no hit, and
    # the failed insertion is logged as Triton logs it.
    srv, root = env
    before = stats(srv, "cached")["inference_stats"]
    big = (1, 300_000)                      # 1.2 MB of FP32 out: more than the 1 MiB cache
    for _ in range(2):
        http_infer(srv, "cached", shape=big, value=6.0)
    inf = stats(srv, "cached")["inference_stats"]
    assert inf["cache_miss"]["count"] - before["cache_miss"]["count"] == 2
    assert inf["cache_hit"]["count"] == before["cache_hit"]["count"]
    assert srv.output().count("Failed to insert key [") == 2
