from tritond.frontend import metrics


def stats_entry(name="simple", version="1"):
    d = lambda c, ns: {"count": c, "ns": ns}
    return {"name": name, "version": version, "last_inference": 1, "inference_count": 10,
            "execution_count": 4,
            "inference_stats": {"success": d(10, 5_000_000), "fail": d(2, 0), "queue": d(10, 1_000_000),
                                "compute_input": d(10, 10_000), "compute_infer": d(10, 3_000_000),
                                "compute_output": d(10, 20_000)},
            "batch_stats": []}


def test_render_uses_triton_names_without_total_suffix():
    text = metrics.render(metrics.families({"model_stats": [stats_entry()]})).decode()
    assert "# TYPE nv_inference_count counter" in text
    assert 'nv_inference_count{model="simple",version="1"} 10' in text
    assert 'nv_inference_exec_count{model="simple",version="1"} 4' in text
    assert 'nv_inference_request_duration_us{model="simple",version="1"} 5000' in text
    assert 'nv_inference_request_failure{model="simple",reason="BACKEND",version="1"} 2' in text
    assert "success_total" not in text and "count_total" not in text
    assert "nv_cpu_memory_total_bytes " in text


def test_label_escaping():
    text = metrics.render(metrics.families({"model_stats": [stats_entry(name='a"b')]})).decode()
    assert 'model="a\\"b"' in text
