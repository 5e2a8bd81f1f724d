from tritond import messages
from tritond.frontend import hostmetrics, metrics, promtext


def stats_entry(name="simple", version="1"):
    d = lambda c, ns: {"count": c, "ns": ns}
    return {"name": name, "version": version, "last_inference": 1, "inference_count": 10,
            "execution_count": 4,
            "inference_stats": {"success": d(10, 5_000_000), "fail": d(2, 0), "queue": d(10, 1_000_000),
                                "compute_input": d(10, 10_000), "compute_infer": d(10, 3_000_000),
                                "compute_output": d(10, 20_000)},
            "batch_stats": []}


def rows(**failures):
    return [messages.ModelMetrics("simple", 1, pending=3, failures=failures)]


def text_of(*args, **kw) -> str:
    return promtext.render(metrics.families(*args, **kw)).decode()


def test_render_uses_triton_names_without_total_suffix():
    text = text_of({"model_stats": [stats_entry()]}, rows(BACKEND=2))
    assert "# TYPE nv_inference_count counter" in text
    assert 'nv_inference_count{model="simple",version="1"} 10' in text
    assert 'nv_inference_exec_count{model="simple",version="1"} 4' in text
    assert 'nv_inference_request_duration_us{model="simple",version="1"} 5000' in text
    assert "success_total" not in text and "count_total" not in text


def test_failures_per_reason_all_four_present():
    text = text_of({"model_stats": [stats_entry()]}, rows(BACKEND=2, REJECTED=1))
    for reason, n in (("REJECTED", 1), ("CANCELED", 0), ("BACKEND", 2), ("OTHER", 0)):
        assert f'nv_inference_request_failure{{model="simple",reason="{reason}",version="1"}} {n}' in text


def test_pending_request_count_with_tritons_help():
    text = text_of({"model_stats": [stats_entry()]}, rows())
    assert ("# HELP nv_inference_pending_request_count Instantaneous number of pending requests "
            "awaiting execution per-model.") in text
    assert 'nv_inference_pending_request_count{model="simple",version="1"} 3' in text


def test_counter_latencies_off_drops_only_the_latency_counters():
    text = text_of({"model_stats": [stats_entry()]}, rows(), latencies=False)
    assert "_duration_us" not in text and "nv_inference_count{" in text
    assert metrics.counter_latencies(["counter_latencies=false"]) is False
    assert metrics.counter_latencies(["counter_latencies=false", "counter_latencies=true"])
    assert metrics.counter_latencies([])


def test_cpu_sampler_reads_proc():
    cpu = hostmetrics.CpuSampler()
    sum(i * i for i in range(200_000))         # some CPU time between the two readings
    cpu.poll()
    text = promtext.render(cpu.families()).decode()
    assert "# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]" in text
    assert 0.0 <= cpu.utilization <= 1.0
    assert 0 < cpu.used < cpu.total
    assert f"nv_cpu_memory_total_bytes {cpu.total}" in text


def test_label_escaping():
    text = text_of({"model_stats": [stats_entry(name='a"b')]})
    assert 'model="a\\"b"' in text


def test_first_response_histogram_sums_the_other_frontends_rows():
    from tritond.frontend.firstresponse import FirstResponse

    from types import SimpleNamespace

    m, n = (SimpleNamespace(key=k, version=1, version_str="1", spec=None) for k in "mn")
    mine, other = FirstResponse(True), FirstResponse(True)
    mine.observe(m, 50_000_000)                # ns
    other.observe(m, 700_900_000)              # whole milliseconds, as Triton: 700
    other.observe(n, 10_000_000)
    (fam,) = mine.families(other.rows_list(), [m, n])
    got = {(s.name, s.labels["model"], s.labels.get("le")): s.value for s in fam.samples}
    assert got[("nv_inference_first_response_histogram_ms_count", "m", None)] == 2
    assert got[("nv_inference_first_response_histogram_ms_bucket", "m", "100")] == 1
    assert got[("nv_inference_first_response_histogram_ms_bucket", "m", "2000")] == 2
    assert got[("nv_inference_first_response_histogram_ms_sum", "m", None)] == 750.0
    assert got[("nv_inference_first_response_histogram_ms_count", "n", None)] == 1


def test_cache_summaries_merge_every_frontends_windows():
    from tritond.frontend.cache import ResponseCache
    from tritond.scheduler.summary import DEFAULT_QUANTILES

    class MV:
        name, version_str = "simple", "1"

    import time
    now = time.monotonic_ns()      # the windows expire by the shared monotonic clock
    a, b = ResponseCache(None, summaries=True), ResponseCache(None, summaries=True)
    for us in (10, 20, 30):
        a._observe(MV, "hit", us * 1000, now)
    b._observe(MV, "hit", 40_000, now)
    b._observe(MV, "miss", 500_000, now)
    fams = metrics.cache_summary_families([stats_entry()], a.summary_rows() + b.summary_rows(),
                                          DEFAULT_QUANTILES)
    got = {(s.name, s.labels.get("quantile")): s.value for f in fams for s in f.samples}
    assert got[("nv_cache_hit_summary_per_model_count", None)] == 4
    assert got[("nv_cache_hit_summary_per_model_sum", None)] == 100
    assert got[("nv_cache_hit_summary_per_model", "0.5")] == 20
    assert got[("nv_cache_hit_summary_per_model", "0.999")] == 40
    assert got[("nv_cache_miss_summary_per_model", "0.5")] == 500
    assert ResponseCache(None).summary_rows() == []     # summaries off: nothing kept


def test_namespace_label_on_every_per_model_sample():
    fams = metrics.families({"model_stats": [stats_entry()]}, rows(BACKEND=2))
    metrics.with_namespaces(fams, {"simple": ("simple", "/models/a")})
    text = promtext.render(fams).decode()
    assert 'nv_inference_count{model="simple",namespace="/models/a",version="1"} 10' in text
    assert ('nv_inference_request_failure{model="simple",namespace="/models/a",'
            'reason="BACKEND",version="1"} 2') in text
    per_model = [line for line in text.splitlines() if 'model="simple"' in line]
    assert per_model and all('namespace="/models/a"' in line for line in per_model)
    assert "nv_pinned_memory_pool_total_bytes 0" in text       # not per model: unchanged


def test_namespace_label_turns_each_key_into_its_name_and_repository():
    twin = {**stats_entry(), "name": "/models/b/simple", "inference_count": 3}
    fams = metrics.families({"model_stats": [{**stats_entry(), "name": "/models/a/simple"},
                                             twin]}, [])
    metrics.with_namespaces(fams, {"/models/a/simple": ("simple", "/models/a"),
                                   "/models/b/simple": ("simple", "/models/b")})
    text = promtext.render(fams).decode()
    assert 'nv_inference_count{model="simple",namespace="/models/a",version="1"} 10' in text
    assert 'nv_inference_count{model="simple",namespace="/models/b",version="1"} 3' in text


def test_namespaced_buckets_and_quantiles_keep_le_and_quantile_last():
    """prometheus-cpp writes a bucket's ``le`` after the model's sorted labels."""
    from prometheus_client.metrics_core import Metric

    from tritond.frontend.metrics import with_namespaces

    fam = Metric("h", "help", "histogram")
    fam.add_sample("h_bucket", {"model": "m", "version": "1", "le": "100"}, 1)
    summary = Metric("s", "help", "summary")
    summary.add_sample("s", {"model": "m", "version": "1", "quantile": "0.5"}, 1)
    with_namespaces([fam, summary], {"m": ("m", "/repo")})
    assert list(fam.samples[0].labels) == ["model", "namespace", "version", "le"]
    assert list(summary.samples[0].labels) == ["model", "namespace", "version", "quantile"]
