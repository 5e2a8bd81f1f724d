"""/metrics on a real tritond: Triton's families and labels, pending requests, failure
reasons, CPU metrics and the metrics flags."""
from __future__ import annotations

import json
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.sched_repo import wait_for, write_repo
from tests.integration.test_batching import grpc_infer, http_infer
from tests.server import Server

MODELS = {
    # one instance, a 400 ms execution, one queued request at most
    "tight": {"max_batch": 1, "sleep_ms": 400, "scheduling":
              "dynamic_batching { default_queue_policy { max_queue_size: 1 } }"},
    "slow": {"max_batch": 1, "sleep_ms": 400, "scheduling": "dynamic_batching { }"},
}

# Families and labels of a CPU-only Triton r26.06 with default flags (docs/user_guide/
# metrics.md; GPU, cache and summary families are absent on such a host or off by default;
# tritond has no pinned memory pool and reports Triton's pinned families at 0).
TRITON_FAMILIES = {
    "nv_inference_request_success": ("counter", {"model", "version"}),
    "nv_inference_request_failure": ("counter", {"model", "version", "reason"}),
    "nv_inference_count": ("counter", {"model", "version"}),
    "nv_inference_exec_count": ("counter", {"model", "version"}),
    "nv_inference_request_duration_us": ("counter", {"model", "version"}),
    "nv_inference_queue_duration_us": ("counter", {"model", "version"}),
    "nv_inference_compute_input_duration_us": ("counter", {"model", "version"}),
    "nv_inference_compute_infer_duration_us": ("counter", {"model", "version"}),
    "nv_inference_compute_output_duration_us": ("counter", {"model", "version"}),
    "nv_inference_pending_request_count": ("gauge", {"model", "version"}),
    "nv_model_load_duration_secs": ("gauge", {"model", "version"}),
    "nv_pinned_memory_pool_total_bytes": ("gauge", set()),
    "nv_pinned_memory_pool_used_bytes": ("gauge", set()),
    "nv_cpu_utilization": ("gauge", set()),
    "nv_cpu_memory_total_bytes": ("gauge", set()),
    "nv_cpu_memory_used_bytes": ("gauge", set()),
}
_SAMPLE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    # GPU families are tests/integration/test_gpu_metrics.py's: off here, so that this
    # CPU-host family list holds on a GPU host too
    srv = Server([write_repo(root, MODELS)], "--instance-pipelining=false",
                 "--metrics-interval-ms=100", "--allow-gpu-metrics=false")
    yield srv
    srv.stop()


def scrape(srv) -> tuple[dict, dict]:
    """(family -> type, {(name, frozenset(labels)): value})."""
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
        text = r.read().decode()
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            name, labels, value = _SAMPLE.match(line).groups()
            pairs = frozenset(tuple(p.split("=", 1)) for p in labels.split(",")) if labels else frozenset()
            samples[(name, frozenset((k, v.strip('"')) for k, v in pairs))] = float(value)
    return types, samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_families_and_labels_match_tritons(env):
    types, samples = scrape(env)
    assert {n: t for n, t in types.items()} == {n: t for n, (t, _) in TRITON_FAMILIES.items()}
    for (name, labels) in samples:
        assert {k for k, _ in labels} == TRITON_FAMILIES[name][1], name
    # Every reason exists at zero for every model before any failure, as Triton pre-creates them.
    for reason in ("OTHER", "REJECTED", "CANCELED", "BACKEND"):
        assert value(samples, "nv_inference_request_failure", model="slow", version="1",
                     reason=reason) == 0
    assert 0.0 <= value(samples, "nv_cpu_utilization") <= 1.0
    assert 0 < value(samples, "nv_model_load_duration_secs", model="slow", version="1") < 60
    assert value(samples, "nv_pinned_memory_pool_total_bytes") == 0
    assert 0 < value(samples, "nv_cpu_memory_used_bytes") < value(samples, "nv_cpu_memory_total_bytes")


def test_pending_count_and_rejected_failures(env):
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(http_infer, env, "tight")
        time.sleep(0.15)                               # running now
        queued = pool.submit(http_infer, env, "tight")
        wait_for(lambda: value(scrape(env)[1], "nv_inference_pending_request_count",
                               model="tight", version="1") == 1, what="one pending")
        with pytest.raises(InferenceServerException, match="Exceeds maximum queue size"):
            http_infer(env, "tight")                   # the queue is full: rejected
        first.result(), queued.result()
    _, samples = scrape(env)
    assert value(samples, "nv_inference_pending_request_count", model="tight", version="1") == 0
    got = {r: value(samples, "nv_inference_request_failure", model="tight", version="1", reason=r)
           for r in ("OTHER", "REJECTED", "CANCELED", "BACKEND")}
    # the refusal is not a failure: Triton's Enqueue errors never reach its statistics
    # (checked against Triton 2.51: only queue timeouts count as REJECTED)
    assert got == {"OTHER": 0, "REJECTED": 0, "CANCELED": 0, "BACKEND": 0}
    with urllib.request.urlopen(f"http://{env.url}/v2/models/tight/stats") as r:
        assert json.load(r)["model_stats"][0]["inference_stats"]["fail"]["count"] == 0
    assert value(samples, "nv_inference_request_success", model="tight", version="1") == 2


def test_a_cancelled_queued_request_is_canceled(env):
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(grpc_infer, env, "slow")
        time.sleep(0.15)
        with pytest.raises(InferenceServerException, match="Deadline"):
            grpc_infer(env, "slow", client_timeout=0.1)   # queued behind it, then given up
        running.result()
    wait_for(lambda: value(scrape(env)[1], "nv_inference_request_failure", model="slow",
                           version="1", reason="CANCELED") == 1, what="CANCELED counted")


def test_counter_latencies_off_and_cpu_metrics_off(tmp_path):
    srv = Server([write_repo(tmp_path, {"m": {}})], "--metrics-config=counter_latencies=false",
                 "--allow-cpu-metrics=false")
    try:
        types, _ = scrape(srv)
    finally:
        srv.stop()
    assert "nv_inference_request_duration_us" not in types
    assert "nv_inference_queue_duration_us" not in types
    assert "nv_cpu_utilization" not in types and "nv_cpu_memory_total_bytes" not in types
    assert "nv_inference_count" in types and "nv_inference_request_failure" in types


# Triton's summary families (metrics.md "Summaries"; names and HELP from core's metrics.cc),
# present with --metrics-config summary_latencies=true.
TRITON_SUMMARIES = ("nv_inference_request_summary_us", "nv_inference_queue_summary_us",
                    "nv_inference_compute_input_summary_us",
                    "nv_inference_compute_infer_summary_us",
                    "nv_inference_compute_output_summary_us")


def test_summary_latencies_with_tritons_names_labels_and_quantiles(tmp_path):
    srv = Server([write_repo(tmp_path, {"m": {}})], "--metrics-config=summary_latencies=true",
                 "--allow-gpu-metrics=false")       # a GPU host's nv_gpu_* are not compared
    try:
        for _ in range(5):
            http_infer(srv, "m")
        c = httpclient.InferenceServerClient(srv.url)
        with pytest.raises(InferenceServerException, match="expected 1 inputs but got 0"):
            c.infer("m", [])             # refused by validation: not counted, as in Triton
        c.close()
        types, samples = scrape(srv)
    finally:
        srv.stop()
    want = {**{n: t for n, (t, _) in TRITON_FAMILIES.items()},
            **{n: "summary" for n in TRITON_SUMMARIES}}
    assert types == want
    for name in TRITON_SUMMARIES:
        quantiles = sorted(dict(labels)["quantile"] for n, labels in samples
                           if n == name)
        assert quantiles == ["0.5", "0.9", "0.95", "0.99", "0.999"], name   # Triton's defaults
        for n, labels in samples:
            if n.startswith(name):
                want_labels = {"model", "version"} | ({"quantile"} if n == name else set())
                assert {k for k, _ in labels} == want_labels, n
        assert value(samples, name + "_count", model="m", version="1") == 5
        q = [value(samples, name, model="m", version="1", quantile=x)
             for x in ("0.5", "0.9", "0.999")]
        assert q == sorted(q) and q[0] >= 0
    # _count and _sum agree with the counters (Triton: "should generally match")
    assert value(samples, "nv_inference_request_success", model="m", version="1") == 5
    assert sum(value(samples, "nv_inference_request_failure", model="m", version="1", reason=r)
               for r in ("OTHER", "REJECTED", "CANCELED", "BACKEND")) == 0
    queue_sum = value(samples, "nv_inference_queue_summary_us_sum", model="m", version="1")
    assert abs(queue_sum - value(samples, "nv_inference_queue_duration_us", model="m",
                                 version="1")) <= 5          # per-request rounding to 1 us
    assert value(samples, "nv_inference_request_summary_us", model="m", version="1",
                 quantile="0.999") <= value(samples, "nv_inference_request_summary_us_sum",
                                            model="m", version="1")


def test_summary_quantiles_setting_and_its_errors(tmp_path):
    import subprocess
    import sys
    repo = write_repo(tmp_path, {"m": {}})
    srv = Server([repo], "--metrics-config=summary_latencies=true",
                 "--metrics-config=summary_quantiles=0.5:0.05,0.99:0.001")
    try:
        http_infer(srv, "m")
        _, samples = scrape(srv)
    finally:
        srv.stop()
    assert sorted(dict(labels)["quantile"] for n, labels in samples
                  if n == "nv_inference_queue_summary_us") == ["0.5", "0.99"]
    proc = subprocess.run([sys.executable, "-m", "tritond.cli", "--model-repository", str(repo),
                           "--metrics-config=summary_quantiles=0.5"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "No ':' delimiter found" in proc.stderr


# Triton's response cache families (metrics.md "Response Cache Metrics"; names and HELP from
# core's metrics.cc), only for a model with response_cache enabled; the summaries only with
# summary_latencies=true, where Triton also drops that model's request summary.
TRITON_CACHE_COUNTERS = ("nv_cache_num_hits_per_model", "nv_cache_hit_duration_per_model",
                         "nv_cache_num_misses_per_model", "nv_cache_miss_duration_per_model")
TRITON_CACHE_SUMMARIES = ("nv_cache_hit_summary_per_model", "nv_cache_miss_summary_per_model")


def test_cache_summaries_with_tritons_names_labels_and_help(tmp_path):
    repo = write_repo(tmp_path, {"cached": {"scheduling": "response_cache { enable: true }"},
                                 "plain": {}})
    # two frontends: each keeps its own windows, a scrape merges them
    srv = Server([repo], "--metrics-config=summary_latencies=true", "--frontend-processes=2",
                 "--cache-config=local,size=1048576", "--allow-gpu-metrics=false")
    try:
        _, before = scrape(srv)
        for v in (1.0, 1.0, 2.0, 1.0, 2.0):     # misses for 1.0 and 2.0, three hits
            http_infer(srv, "cached", value=v)
        grpc_infer(srv, "cached", value=1.0)    # a fourth hit, over gRPC
        http_infer(srv, "plain")
        types, samples = scrape(srv)
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
            text = r.read().decode()
    finally:
        srv.stop()
    assert types == {**{n: t for n, (t, _) in TRITON_FAMILIES.items()},
                     **{n: "summary" for n in TRITON_SUMMARIES},
                     **{n: "counter" for n in TRITON_CACHE_COUNTERS},
                     **{n: "summary" for n in TRITON_CACHE_SUMMARIES}}
    assert ("# HELP nv_cache_hit_summary_per_model Summary of cache hit counts/durations per "
            "model, in microseconds.") in text
    assert ("# HELP nv_cache_miss_summary_per_model Summary of cache miss counts/durations per "
            "model, in microseconds.") in text
    for name in TRITON_CACHE_SUMMARIES:
        # present at load with no lookup yet (count 0, NaN quantiles), as Triton creates them
        assert value(before, name + "_count", model="cached", version="1") == 0
        for n, labels in samples:
            if n.startswith(name):
                want_labels = {"model", "version"} | ({"quantile"} if n == name else set())
                assert {k for k, _ in labels} == want_labels, n
                assert dict(labels)["model"] == "cached", n     # only the cached model
        assert sorted(dict(labels)["quantile"] for n, labels in samples
                      if n == name) == ["0.5", "0.9", "0.95", "0.99", "0.999"]
        q = [value(samples, name, model="cached", version="1", quantile=x)
             for x in ("0.5", "0.9", "0.999")]
        assert q == sorted(q) and q[0] >= 0
    # _count and _sum agree with the cache counters, summed over both frontends
    assert value(samples, "nv_cache_hit_summary_per_model_count", model="cached",
                 version="1") == value(samples, "nv_cache_num_hits_per_model", model="cached",
                                       version="1") == 4
    assert value(samples, "nv_cache_miss_summary_per_model_count", model="cached",
                 version="1") == value(samples, "nv_cache_num_misses_per_model",
                                       model="cached", version="1") == 2
    for kind in ("hit", "miss"):
        total = value(samples, f"nv_cache_{kind}_summary_per_model_sum", model="cached",
                      version="1")
        assert abs(total - value(samples, f"nv_cache_{kind}_duration_per_model",
                                 model="cached", version="1")) <= 2   # integer us counter
    # Triton leaves out the request summary of a cached model, not of the others
    requests = {dict(labels)["model"] for n, labels in samples
                if n == "nv_inference_request_summary_us_count"}
    assert requests == {"plain"}


# A model's own buckets for Triton's first-response histogram (QA L0_metrics
# histogram_metrics_test test_buckets_override).
CUSTOM_BUCKETS = ('model_metrics { metric_control [ { metric_identifier { family: '
                  '"nv_inference_first_response_histogram_ms" } histogram_options { '
                  'buckets: [ -1, 0.0, 1, 2.5 ] } } ] }')
FIRST = "nv_inference_first_response_histogram_ms"


def test_first_response_histogram_for_every_model_from_its_load(tmp_path):
    """Triton (histogram_latencies=true) creates the histogram of every model version at
    load, observes the first response of every request, decoupled or not, in whole
    milliseconds, and takes a model's model_metrics buckets."""
    repo = write_repo(tmp_path, {"slow": {"sleep_ms": 120}, "custom": {"scheduling": CUSTOM_BUCKETS}})
    srv = Server([repo], "--metrics-config=histogram_latencies=true", "--allow-gpu-metrics=false")
    try:
        types, before = scrape(srv)
        http_infer(srv, "slow")
        grpc_infer(srv, "slow")
        _, after = scrape(srv)
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
            text = r.read().decode()
    finally:
        srv.stop()
    assert types[FIRST] == "histogram"
    assert value(before, FIRST + "_count", model="slow", version="1") == 0
    assert value(before, FIRST + "_count", model="custom", version="1") == 0
    assert sorted(dict(labels)["le"] for n, labels in before
                  if n == FIRST + "_bucket" and dict(labels)["model"] == "custom") == \
        sorted(["-1", "0", "1", "2.5", "+Inf"])
    assert text.count(f'{FIRST}_bucket{{model="custom",version="1",le="2.5"}} 0') == 1
    # two unary requests (HTTP, gRPC) to a model that is not decoupled, each >= 120 ms
    assert value(after, FIRST + "_count", model="slow", version="1") == 2
    assert value(after, FIRST + "_bucket", model="slow", version="1", le="100") == 0
    assert value(after, FIRST + "_bucket", model="slow", version="1", le="+Inf") == 2
    assert value(after, FIRST + "_sum", model="slow", version="1") >= 240
    for line in text.splitlines():       # whole milliseconds, as Triton observes them
        if line.startswith(FIRST):
            int(line.rsplit(" ", 1)[1])


def test_no_first_response_histogram_unless_enabled(tmp_path):
    srv = Server([write_repo(tmp_path, {"custom": {"scheduling": CUSTOM_BUCKETS}})],
                 "--allow-gpu-metrics=false")
    try:
        http_infer(srv, "custom")
        types, _ = scrape(srv)
    finally:
        srv.stop()
    assert FIRST not in types


def test_metric_tags_become_labels_of_the_models_metrics(tmp_path):
    """Triton (metric_model_reporter.cc GetMetricLabels) adds each ``metric_tags`` entry of a
    model's config as a label ``_<key>`` of every per-model metric; they were dropped."""
    tags = 'metric_tags { key: "team" value: "vision" } metric_tags { key: "tier" value: "gold" }'
    srv = Server([write_repo(tmp_path, {"tagged": {"scheduling": tags}, "plain": {}})],
                 "--allow-gpu-metrics=false", "--metrics-config=summary_latencies=true")
    try:
        http_infer(srv, "tagged")
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
            text = r.read().decode()
    finally:
        srv.stop()
    assert 'nv_inference_count{_team="vision",_tier="gold",model="tagged",version="1"} 1' in text
    assert ('nv_inference_request_failure{_team="vision",_tier="gold",model="tagged",'
            'reason="BACKEND",version="1"} 0') in text
    assert ('nv_inference_queue_summary_us{_team="vision",_tier="gold",model="tagged",'
            'version="1",quantile="0.5"}') in text
    assert 'nv_inference_count{model="plain",version="1"} 0' in text
