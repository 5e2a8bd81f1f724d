"""Raw binary requests, classification labels and the start-up
/dev/shm check, on one real tritond whose input arena cannot fit in /dev/shm."""
import http.client
import json
import re
import shutil
import struct

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration.echo_repo import echo_model
from tests.server import REPO, Server

LABELS = "cat\n\ndog\nbird\n"      # index 1 has an empty label, index 4 none at all
HUGE = 1 << 40                     # bigger than any /dev/shm here


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name in ("simple", "simple_string"):
        shutil.copytree(REPO / name, repo / name)
    echo_model(repo, "raw_fp32", "TYPE_FP32", "[ 2, -1 ]", max_batch=4)
    echo_model(repo, "raw_bytes", "TYPE_STRING", "[ 1 ]")
    echo_model(repo, "two_var", "TYPE_FP32", "[ -1, -1 ]")
    echo_model(repo, "scores", "TYPE_FP32", "[ 5 ]", max_batch=4,
               out_extra='label_filename: "labels.txt"', files={"labels.txt": LABELS})
    echo_model(repo, "escape", "TYPE_FP32", "[ 5 ]",
               out_extra='label_filename: "../scores/labels.txt"')
    # "escape" fails to load on purpose, so readiness is not strict here.
    srv = Server([repo], "--strict-readiness=false", f"--input-arena-byte-size={HUGE}")
    yield srv
    srv.stop()


def raw_post(server, model, body, hlen="0"):
    conn = http.client.HTTPConnection(server.url, timeout=30)
    try:
        conn.request("POST", f"/v2/models/{model}/infer", body=body,
                     headers={"Inference-Header-Content-Length": hlen})
        resp = conn.getresponse()
        data = resp.read()
        header_len = resp.getheader("Inference-Header-Content-Length")
    finally:
        conn.close()
    if header_len is None:
        return resp.status, json.loads(data), b""
    n = int(header_len)
    return resp.status, json.loads(data[:n]), data[n:]


def test_raw_fp32_deduces_the_variable_dim_and_batch_1(server):
    x = np.arange(6, dtype=np.float32)
    status, head, blob = raw_post(server, "raw_fp32", x.tobytes())
    assert status == 200, head
    (out,) = head["outputs"]
    assert out["name"] == "OUT0" and out["datatype"] == "FP32" and out["shape"] == [1, 2, 3]
    assert out["parameters"] == {"binary_data_size": 24}          # outputs always binary
    np.testing.assert_array_equal(np.frombuffer(blob, np.float32), x)


def test_raw_bytes_is_one_element(server):
    status, head, blob = raw_post(server, "raw_bytes", b"hello raw")
    assert status == 200, head
    assert head["outputs"][0]["shape"] == [1] and head["outputs"][0]["datatype"] == "BYTES"
    assert blob == struct.pack("<I", 9) + b"hello raw"


_NO_ID = "[request id: <id_unknown>] "     # a raw body carries no request id


@pytest.mark.parametrize("model,body,words", [
    ("simple", b"\0" * 128, _NO_ID + "Raw request must only have 1 input (found 1) to be "
                            "deduced but got 2 inputs in 'simple' model configuration"),
    ("two_var", b"\0" * 8, _NO_ID + "The shape of the raw input 'IN0' can not be deduced "
                           "because there are more than one variable-sized dimension"),
    ("simple_string", b"abc", _NO_ID + "For BYTE datatype raw input 'INPUT0', the model must "
                              "have input shape [1]"),
    ("raw_fp32", b"\0" * 10, "raw_fp32"),           # 10 bytes: no whole [2, n] FP32 tensor
])
def test_raw_errors(server, model, body, words):
    status, head, _ = raw_post(server, model, body)
    assert status == 400, head
    if words.startswith(_NO_ID):        # Triton's core's own words, whole
        assert head["error"] == words
    else:
        assert words in head["error"], head


# ("1.5" is 1 to Triton's std::stoi: tests/integration/test_triton_parity3.py)
@pytest.mark.parametrize("value", ["abc", "-1", "x1.5", ""])
def test_malformed_header_length_is_400(server, value):
    status, head, _ = raw_post(server, "raw_fp32", b"\0" * 8, hlen=value)
    assert status == 400, head
    assert ("Unable to parse Inference-Header-Content-Length" in head["error"]
            or "inference header size should be in range" in head["error"]), head


def test_header_length_past_the_body_is_400(server):
    status, head, _ = raw_post(server, "raw_fp32", b"{}", hlen="3")
    assert status == 400 and "inference header size" in head["error"]


EXPECTED = [[b"0.900000:3:bird", b"0.700000:4", b"0.500000:1"],
            [b"5.000000:0:cat", b"4.000000:1", b"3.000000:2:dog"]]


def _scores():
    return np.array([[0.1, 0.5, 0.3, 0.9, 0.7], [5, 4, 3, 2, 1]], np.float32)


def test_classification_labels_http(server):
    c = httpclient.InferenceServerClient(server.url)
    try:
        inp = httpclient.InferInput("IN0", [2, 5], "FP32")
        inp.set_data_from_numpy(_scores())
        for binary in (True, False):
            out = httpclient.InferRequestedOutput("OUT0", binary_data=binary, class_count=3)
            r = c.infer("scores", [inp], outputs=[out])
            got = r.as_numpy("OUT0")
            assert got.shape == (2, 3)
            assert [[v if isinstance(v, bytes) else v.encode() for v in row] for row in got] \
                == EXPECTED
    finally:
        c.close()


def test_classification_labels_grpc(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        inp = grpcclient.InferInput("IN0", [2, 5], "FP32")
        inp.set_data_from_numpy(_scores())
        r = c.infer("scores", [inp], outputs=[grpcclient.InferRequestedOutput("OUT0", class_count=3)])
        assert r.as_numpy("OUT0").tolist() == EXPECTED
    finally:
        c.close()


def test_label_file_outside_the_model_dir_fails_the_load(server):
    c = httpclient.InferenceServerClient(server.url)
    try:
        rows = {r["name"]: r for r in c.get_model_repository_index()}
        assert rows["escape"]["state"] == "UNAVAILABLE"
        # Triton's text (core model.cc, newest; 2.51 read the file), its code's name first
        assert re.fullmatch(r"Unsupported: label file path '.*/escape/\.\./scores/labels\.txt' for output "
                            r"'OUT0' in model 'escape' is outside model directory",
                            rows["escape"]["reason"]), rows["escape"]["reason"]
        assert not c.is_model_ready("escape") and c.is_model_ready("scores")
    finally:
        c.close()


def test_small_shm_is_reported_once_and_the_server_serves(server):
    # Every test above was served with per-tensor segments: the arena never fit.
    lines = [ln for ln in server.output().splitlines() if "shared memory:" in ln]
    assert len(lines) == 1, lines
    assert f"--input-arena-byte-size={HUGE} x 1 frontend" in lines[0]
    for hint in ("--shm-size=", "medium: Memory", "remount,size="):
        assert hint in lines[0]
