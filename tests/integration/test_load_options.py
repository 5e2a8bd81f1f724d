"""--model-load-retry-count and --model-load-thread-count on a real tritond."""
import pathlib
import time

import pytest
import tritonclient.http as httpclient

from tests.server import Server

FAILS_ONCE = '''
import os
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        marker = os.path.join(args["model_repository"], "tried")
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first load fails")

    def execute(self, requests):
        return []
'''
SLOW_LOAD = '''
import os
import time


class TritonPythonModel:
    def initialize(self, args):
        with open(os.path.join(args["model_repository"], "..", "log"), "a") as f:
            f.write(f"start {time.monotonic()}\\n")
        time.sleep(0.7)
        with open(os.path.join(args["model_repository"], "..", "log"), "a") as f:
            f.write(f"end {time.monotonic()}\\n")

    def execute(self, requests):
        return []
'''
CONFIG = ('name: "{name}"\nbackend: "python"\n'
          'input [ { name: "IN0" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
          'output [ { name: "OUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
          'instance_group [ { kind: KIND_CPU count: 1 } ]\n')


def model(repo: pathlib.Path, name: str, source: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.py").write_text(source)
    (repo / name / "config.pbtxt").write_text(CONFIG.replace("{name}", name))


@pytest.mark.parametrize("retries,state", [(0, "UNAVAILABLE"), (1, "READY")])
def test_load_retry_count(tmp_path, retries, state):
    model(tmp_path, "flaky", FAILS_ONCE)
    srv = Server([tmp_path], f"--model-load-retry-count={retries}", wait_ready=False)
    try:
        if retries:
            srv.wait("/v2/health/ready")           # LOADING throughout, then READY
        else:
            srv.wait("/v2/health/live")
            deadline = time.monotonic() + 60
            while srv.output().count("is UNAVAILABLE") == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
        (row,) = httpclient.InferenceServerClient(srv.url).get_model_repository_index()
        assert row["state"] == state
        if retries:
            assert "retrying the load of 'flaky' version 1 (retry 1 of 1)" in srv.output()
        else:
            assert "first load fails" in row["reason"]
    finally:
        srv.stop()


def test_load_thread_count_one_loads_one_at_a_time(tmp_path):
    for name in ("slow_a", "slow_b", "slow_c"):
        model(tmp_path, name, SLOW_LOAD)
    srv = Server([tmp_path], "--model-load-thread-count=1")
    srv.stop()
    events = [line.split() for line in (tmp_path / "log").read_text().splitlines()]
    assert [e[0] for e in events] == ["start", "end"] * 3      # never two loading at once
    assert all(float(a[1]) <= float(b[1]) for a, b in zip(events, events[1:]))
