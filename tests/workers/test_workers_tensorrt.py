"""The TensorRT backend where TensorRT is absent, and its engine I/O rules.

Without the ``tensorrt`` package a TensorRT model fails at load, naming the
package (a real tritond, real load). The engine rules (bindings by name and
type, optimization profile choice) need no TensorRT. tests/gpu runs engines.
"""
from __future__ import annotations

import importlib.util

import pytest
import tritonclient.http as httpclient

from tests.integration.sched_repo import wait_for
from tests.server import Server
from tritond.errors import TritonError
from tritond.workers import tensorrtio

IO = ('max_batch_size: 8\n'
      'input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
      'output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="tensorrt is installed here (tests/gpu runs engines)")
def test_without_tensorrt_the_load_fails_naming_the_package(tmp_path):
    for name, head in (("by_backend", 'backend: "tensorrt"\n'),
                       ("by_platform", 'platform: "tensorrt_plan"\n')):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "model.plan").write_bytes(b"not an engine")
        (tmp_path / name / "config.pbtxt").write_text(f'name: "{name}"\n{head}{IO}')
    srv = Server([tmp_path], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(srv.url)

        def failed():
            rows = {r["name"]: r for r in client.get_model_repository_index()}
            done = all(rows.get(n, {}).get("state") == "UNAVAILABLE"
                       for n in ("by_backend", "by_platform"))
            return rows if done else None
        rows = wait_for(failed, timeout=60, what="both TensorRT models to fail")
        for name in ("by_backend", "by_platform"):
            reason = rows[name]["reason"]
            assert "backend 'tensorrt' is not available" in reason
            assert "tensorrt Python package is not installed" in reason
            assert "pip install tensorrt-cu12 or tensorrt-cu13" in reason
        assert srv.proc.poll() is None
    finally:
        srv.stop()


def test_bindings_by_name_and_type():
    engine = {"x": "FLOAT", "mask": "BOOL"}
    tensorrtio.check_bindings("m", {"x": "FP32", "mask": "BOOL"}, engine, "input")
    with pytest.raises(TritonError, match="input 'z' is not an input of the engine"):
        tensorrtio.check_bindings("m", {"z": "FP32"}, engine, "input")
    with pytest.raises(TritonError, match="unexpected datatype TYPE_FP32 for input 'x', "
                                          "expecting TYPE_FP16"):
        tensorrtio.check_bindings("m", {"x": "FP16"}, engine, "input")


def test_profile_is_the_first_box_holding_every_input():
    profiles = [{"x": ((1, 4), (8, 4)), "k": ((1,), (8,))},
                {"x": ((9, 4), (64, 4)), "k": ((1,), (64,))}]
    assert tensorrtio.pick_profile({"x": (3, 4), "k": (3,)}, profiles) == 0
    assert tensorrtio.pick_profile({"x": (16, 4), "k": (16,)}, profiles) == 1
    with pytest.raises(TritonError, match=r"input 'x' shape \[65, 4\] is outside"):
        tensorrtio.pick_profile({"x": (65, 4), "k": (3,)}, profiles)
    with pytest.raises(TritonError, match="outside"):
        tensorrtio.pick_profile({"x": (3, 5), "k": (3,)}, profiles)
