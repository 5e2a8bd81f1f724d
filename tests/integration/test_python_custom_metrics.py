"""A Python model's ``pb_utils.MetricFamily`` series appear on ``/metrics`` in Triton's
text (python_backend's QA ``custom_metrics``): HELP/TYPE lines, sorted labels, a
histogram's ``_count``/``_sum``/cumulative ``_bucket`` lines, shared by the model's
instances, and gone when the model unloads."""
from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import Server

MODEL = '''
import numpy as np
import triton_python_backend_utils as pb_utils

MF = pb_utils.MetricFamily


class TritonPythonModel:
    def initialize(self, args):
        labels = {"example2": "label2", "example1": "label1"}
        self.families = [MF("qa_requests", "requests seen", MF.COUNTER),
                         MF("qa_last", "last value", MF.GAUGE),
                         MF("qa_values", "values seen", MF.HISTOGRAM)]
        self.count = self.families[0].Metric(labels=labels)
        self.last = self.families[1].Metric(labels=labels)
        self.values = self.families[2].Metric(labels=labels, buckets=[0.1, 1.0, 2.5, 5.0, 10.0])

    def execute(self, requests):
        out = []
        for request in requests:
            x = float(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()[0])
            self.count.increment(1)
            self.last.set(x)
            self.values.observe(x)
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", np.array([x], np.float32))]))
        return out
'''
SELF_READ = '''
import re
import urllib.request
import numpy as np
import triton_python_backend_utils as pb_utils

MF = pb_utils.MetricFamily


class TritonPythonModel:
    def initialize(self, args):
        self.family = MF("qa_self_read", "updated then read back in one execute", MF.COUNTER)
        self.counter = self.family.Metric(labels={"m": "self"})

    def execute(self, requests):
        out = []
        for request in requests:
            port = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()[0])
            self.counter.increment(1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
                text = r.read().decode()
            m = re.search(r'^qa_self_read{m="self"} (\\S+)$', text, re.M)
            seen = float(m.group(1)) if m else -1.0
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", np.array([seen], np.float32))]))
        return out
'''
CONFIG = ('name: "metered"\nbackend: "python"\n'
          'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
          'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 2 } ]\n')
LABELS = 'example1="label1",example2="label2"'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    (repo / "metered" / "1").mkdir(parents=True)
    (repo / "metered" / "1" / "model.py").write_text(MODEL)
    (repo / "metered" / "config.pbtxt").write_text(CONFIG)
    (repo / "self_read" / "1").mkdir(parents=True)
    (repo / "self_read" / "1" / "model.py").write_text(SELF_READ)
    (repo / "self_read" / "config.pbtxt").write_text(
        CONFIG.replace('"metered"', '"self_read"').replace("count: 2", "count: 1"))
    srv = Server([repo], "--model-control-mode=explicit", "--load-model=metered",
                 "--load-model=self_read")
    yield srv
    srv.stop()


def scrape(server) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        return r.read().decode()


def test_series_reach_metrics_in_tritons_text(server):
    before = scrape(server)
    assert f"qa_values_count{{{LABELS}}} 0" in before       # made in initialize
    assert f'qa_values_bucket{{{LABELS},le="+Inf"}} 0' in before
    client = httpclient.InferenceServerClient(server.url)
    for x in (0.05, 1.5, 6.0):
        inp = httpclient.InferInput("IN", [1], "FP32")
        inp.set_data_from_numpy(np.array([x], np.float32))
        client.infer("metered", [inp])
    text = scrape(server)
    for line in ("# HELP qa_requests requests seen", "# TYPE qa_requests counter",
                 f"qa_requests{{{LABELS}}} 3",               # both instances' counts
                 "# TYPE qa_last gauge", f"qa_last{{{LABELS}}} 6",
                 "# TYPE qa_values histogram", f"qa_values_count{{{LABELS}}} 3",
                 f'qa_values_bucket{{{LABELS},le="0.1"}} 1', f'qa_values_bucket{{{LABELS},le="1"}} 1',
                 f'qa_values_bucket{{{LABELS},le="2.5"}} 2', f'qa_values_bucket{{{LABELS},le="5"}} 2',
                 f'qa_values_bucket{{{LABELS},le="10"}} 3',
                 f'qa_values_bucket{{{LABELS},le="+Inf"}} 3'):
        assert line + "\n" in text
    (total,) = [ln for ln in text.splitlines() if ln.startswith("qa_values_sum{")]
    assert float(total.rsplit(" ", 1)[1]) == pytest.approx(0.05 + 1.5 + 6.0, abs=1e-6)
    assert text.count("qa_values_bucket{") == 6


def test_a_model_reads_back_its_update_in_the_same_execute(server):
    """python_backend's QA custom_metrics: increment, then /metrics shows it at once."""
    client = httpclient.InferenceServerClient(server.url)
    for n in range(1, 6):
        inp = httpclient.InferInput("IN", [1], "FP32")
        inp.set_data_from_numpy(np.array([server.metrics_port], np.float32))
        assert client.infer("self_read", [inp]).as_numpy("OUT").tolist() == [n]


def test_series_leave_with_the_model(server):
    client = httpclient.InferenceServerClient(server.url)
    client.unload_model("metered")
    end = time.monotonic() + 15      # the workers finish unloading after the API answered
    while "qa_requests" in scrape(server) and time.monotonic() < end:
        time.sleep(0.1)
    assert "qa_requests" not in scrape(server)
