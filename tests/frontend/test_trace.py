"""frontend/trace.py without processes: sampling, per-model settings, Triton's files."""
import json

from tritond import options
from tritond.frontend.trace import Tracer


def tracer(tmp_path, *entries):
    return Tracer(options.Options(trace_config=[f"triton,file={tmp_path}/t.json", *entries]))


def run(t, model="m", n=1):
    traced = []
    for _ in range(n):
        tr = t.start(model)
        if tr is not None:
            tr.version = 1
            tr.stamp("REQUEST_START", 10)
            t.finish(tr)
            traced.append(tr.id)
    return traced


def test_off_by_default_costs_one_test(tmp_path):
    t = tracer(tmp_path)
    assert t.maybe is False and t.start("m") is None


def test_rate_and_count(tmp_path):
    t = tracer(tmp_path, "level=TIMESTAMPS", "rate=3", "count=2")
    assert run(t, n=10) == [1, 2]              # the 3rd and 6th request, then count is 0
    assert t.get()["trace_count"] == "0"


def test_model_override_falls_back_to_global_values(tmp_path):
    t = tracer(tmp_path, "level=TIMESTAMPS", "rate=1")
    t.apply("m", {"trace_level": ["OFF"]})
    assert run(t, "m") == [] and run(t, "other") == [1]
    assert t.get("m")["trace_rate"] == "1"
    t.apply("", {"trace_rate": "2"})
    assert t.get("m")["trace_rate"] == "2"     # not overridden: follows the global one
    t.apply("m", {"trace_level": None})
    assert run(t, "m", 2) == [2]


def test_file_is_one_json_array_written_at_close(tmp_path):
    t = tracer(tmp_path, "level=TIMESTAMPS", "rate=1")
    run(t, n=2)
    t.apply("", {"trace_rate": "1"})           # a replaced setting writes what it collected
    run(t)
    t.close()
    objs = json.loads((tmp_path / "t.json").read_text())
    assert [o["id"] for o in objs if "model_name" in o] == [1, 2, 3]
    assert {"id": 1, "timestamps": [{"name": "REQUEST_START", "ns": 10}]} in objs


def test_log_frequency_writes_indexed_files(tmp_path):
    t = tracer(tmp_path, "level=TIMESTAMPS", "rate=1", "triton,log-frequency=2")
    run(t, n=5)
    t.close()                                   # the 5th goes to its own indexed file
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["t.json.0", "t.json.1", "t.json.2"]
    assert len(json.loads((tmp_path / "t.json.2").read_text())) == 2   # head + timestamp
