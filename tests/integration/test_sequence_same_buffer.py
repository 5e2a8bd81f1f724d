"""use_same_buffer_for_input_output and use_growable_memory through a real tritond
(issue 11): the same answers with one state buffer per slot; growable memory refused
at load with Triton's message on CPU instances."""
from __future__ import annotations

import os
import time

import tritonclient.http as httpclient

from tests.integration.seq_repo import write
from tests.integration.test_sequence_state import run_sequences, state_segments
from tests.server import Server


def test_same_buffer_states_give_the_same_answers(tmp_path):
    """Python (its array copied over the input) and ONNX Runtime (no output binding to
    the input buffer): sequences in parallel, each answer checked by run_sequences;
    the buffer counts are unit-tested (tests/workers/test_sequence_state.py)."""
    srv = Server([write(tmp_path, state_option="use_same_buffer_for_input_output: true")])
    try:
        before = state_segments(srv)
        run_sequences(srv.url, "seq_state_py", 12, 100)
        run_sequences(srv.url, "seq_state_onnx", 12, 200, initial=100)
        assert state_segments(srv) == before
    finally:
        srv.stop()


def test_growable_memory_is_refused_at_load_with_tritons_messages(tmp_path):
    repo = write(tmp_path, state_option="use_growable_memory: true")
    srv = Server([repo], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(srv.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = {r["name"]: r for r in client.get_model_repository_index()}
            # the refused config fails when read, possibly before the others are loaded
            if rows.get("seq_state_py", {}).get("state") == "UNAVAILABLE" and \
                    rows.get("seq_direct", {}).get("state") == "READY":
                break
            time.sleep(0.2)
        assert rows["seq_state_py"]["state"] == "UNAVAILABLE"
        assert "In order to 'use_growable_memory', you must also enable 'use_single_buffer' " \
               "for state input name 'INPUT_STATE'." in rows["seq_state_py"]["reason"]
        assert client.is_model_ready("seq_direct")    # the others load
    finally:
        srv.stop()
    both = "use_same_buffer_for_input_output: true use_growable_memory: true"
    srv = Server([write(tmp_path / "cpu", state_option=both)], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        client = httpclient.InferenceServerClient(srv.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = {r["name"]: r for r in client.get_model_repository_index()}
            if rows.get("seq_state_onnx", {}).get("state") == "UNAVAILABLE":
                break
            time.sleep(0.2)
        assert "'use_growable_memory' can only work with KIND_GPU model instances right now." \
            in rows["seq_state_onnx"]["reason"], rows["seq_state_onnx"]
    finally:
        srv.stop()
    assert os.path.isdir(repo)
