"""The sequence batcher through real processes and the real tritonclient: Triton's sequence
client examples (HTTP sync, gRPC stream), direct and oldest strategies, backlog, idle
timeout, Triton's errors, and implicit state in Python and ONNX models (seq_repo.py)."""
from __future__ import annotations

import queue
import re
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.integration.seq_repo import write, write_slot_utilization, write_state_outputs
from tests.server import Server

VALUES = [11, 7, 5, 3, 2, 0, 1]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    repo = write(tmp_path_factory.mktemp("seq"))
    server = Server([write_slot_utilization(write_state_outputs(repo))])
    yield server
    server.stop()


def infer(client, model, value, sequence_id, start=False, end=False):
    data = np.full((1, 1), value, np.int32)
    inp = httpclient.InferInput("INPUT", [1, 1], "INT32")
    inp.set_data_from_numpy(data)
    result = client.infer(model, [inp], sequence_id=sequence_id, sequence_start=start,
                          sequence_end=end)
    return int(result.as_numpy("OUTPUT")[0][0])


def wait_pending(srv, model, count, timeout=30.0):
    """Until /metrics shows ``count`` requests of ``model`` waiting (the backlog holds them)."""
    line = f'nv_inference_pending_request_count{{model="{model}",version="1"}} {count}'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10).read().decode()
        if any(row.startswith(line) for row in text.splitlines()):
            return
        time.sleep(0.02)
    raise AssertionError(f"{model}: {count} pending never showed in /metrics")


def send(client, model, values, sequence_id):
    return [infer(client, model, v, sequence_id, i == 0, i == len(values) - 1)
            for i, v in enumerate(values)]


def accumulated(values, corrid):
    out, acc = [], 0
    for i, v in enumerate(values):
        acc = v if i == 0 else acc + v
        out.append(acc + (corrid if i == len(values) - 1 else 0))
    return out


def test_http_sync_sequence_example(srv):
    """simple_http_sequence_sync_infer_client: two interleaved-in-time int sequences."""
    client = httpclient.InferenceServerClient(srv.url)
    seq0 = send(client, "seq_direct", [0] + VALUES, 1000)
    seq1 = send(client, "seq_direct", [100] + [-v for v in VALUES], 1001)
    assert seq0 == accumulated([0] + VALUES, 1000)
    assert seq1 == accumulated([100] + [-v for v in VALUES], 1001)


def test_http_sync_example_on_the_onnx_simple_sequence(srv):
    """simple_http_sequence_sync_infer_client against simple_sequence, as the example checks
    it (int ids and a uuid string id); concurrent, so batches carry several slots."""
    client = httpclient.InferenceServerClient(srv.url)
    runs = {1000: [0] + VALUES, 1001: [100] + [-v for v in VALUES],
            str(uuid.uuid4()): [20] + [-v for v in VALUES]}

    def run(cid):
        return send(httpclient.InferenceServerClient(srv.url), "simple_sequence", runs[cid], cid)

    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(runs, pool.map(run, runs)))
    for cid, values in runs.items():
        assert results[cid] == [values[0] + 1, *values[1:]], cid
    assert send(client, "simple_sequence", [5, 6], 1002) == [6, 6]


def test_concurrent_direct_sequences_keep_their_rows(srv):
    """Four sequences at once share batches (rows = slots): each still adds up alone."""
    client_values = {cid: [cid % 10] + [cid % 7 + i for i in range(12)] for cid in (11, 12, 13, 14)}

    def run(cid):
        return send(httpclient.InferenceServerClient(srv.url), "seq_direct",
                    client_values[cid], cid)

    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(client_values, pool.map(run, client_values)))
    for cid, values in client_values.items():
        assert results[cid] == accumulated(values, cid)


def test_grpc_stream_sequence_example(srv):
    """simple_grpc_sequence_stream_infer_client: two sequences over one stream."""
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        values = [0] + VALUES
        for i, v in enumerate(values):
            for cid, sign in ((2000, 1), (2001, -1)):
                inp = grpcclient.InferInput("INPUT", [1, 1], "INT32")
                inp.set_data_from_numpy(np.full((1, 1), sign * v, np.int32))
                client.async_stream_infer("seq_direct", [inp], request_id=f"{cid}_{i}",
                                          sequence_id=cid, sequence_start=i == 0,
                                          sequence_end=i == len(values) - 1)
        got = {}
        for _ in range(2 * len(values)):
            result, error = results.get(timeout=30)
            assert error is None, error
            rid = result.get_response().id
            got[rid] = int(result.as_numpy("OUTPUT")[0][0])
    finally:
        client.stop_stream()
    for cid, sign in ((2000, 1), (2001, -1)):
        want = accumulated([sign * v for v in values], cid)
        assert [got[f"{cid}_{i}"] for i in range(len(values))] == want


def test_oldest_with_string_ids(srv):
    ids = ["1002", "1003", "1004"]

    def run(cid):
        client = httpclient.InferenceServerClient(srv.url)
        return send(client, "seq_oldest", [20] + [-v for v in VALUES], cid)

    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(ids, pool.map(run, ids)))
    for cid in ids:
        assert results[cid] == accumulated([20] + [-v for v in VALUES], int(cid))


def test_sequence_extension_is_advertised(srv):
    assert "sequence" in httpclient.InferenceServerClient(srv.url).get_server_metadata()[
        "extensions"]


def test_triton_errors(srv):
    client = httpclient.InferenceServerClient(srv.url)
    with pytest.raises(InferenceServerException) as err:
        infer(client, "seq_direct", 1, 0, start=True)
    assert "inference request to model 'seq_direct' must specify a non-zero or non-empty " \
           "correlation ID" in err.value.message()
    assert err.value.status() == "400"
    with pytest.raises(InferenceServerException) as err:
        infer(client, "seq_direct", 1, 777)
    assert "inference request for sequence 777 to model 'seq_direct' must specify the START " \
           "flag on the first request of the sequence" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        infer(client, "seq_direct", 1, "x" * 129, start=True)
    assert "string correlation ID cannot be longer than 128 characters" in err.value.message()


def test_a_correlation_id_of_the_wrong_type_is_refused_as_triton(srv):
    """L0_sequence_corrid_batcher test_corrid_data_type: a string id to a model whose CORRID
    is an integer (and a uint64 id to a TYPE_STRING one) fails INVALID_ARG with Triton's
    text, on HTTP and gRPC."""
    client = httpclient.InferenceServerClient(srv.url)
    for model, cid, got, want in (("seq_direct", "5100", "BYTES", "UINT64"),
                                  ("seq_oldest", 5101, "UINT64", "BYTES")):
        with pytest.raises(InferenceServerException) as err:
            infer(client, model, 1, cid, start=True)
        assert err.value.status() == "400"
        assert f"sequence batching control 'CORRID' data-type is '{got}', but model " \
               f"'{model}' expects '{want}'" in err.value.message()
    gclient = grpcclient.InferenceServerClient(srv.grpc_url)
    inp = grpcclient.InferInput("INPUT", [1, 1], "INT32")
    inp.set_data_from_numpy(np.full((1, 1), 1, np.int32))
    with pytest.raises(InferenceServerException) as err:
        gclient.infer("seq_oldest", [inp], sequence_id=5102, sequence_start=True)
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "data-type is 'UINT64', but model 'seq_oldest' expects 'BYTES'" in err.value.message()
    # a request without an id is a uint64 0 to Triton: the type error comes first
    with pytest.raises(InferenceServerException) as err:
        gclient.infer("seq_oldest", [inp], sequence_start=True)
    assert "data-type is 'UINT64', but model 'seq_oldest' expects 'BYTES'" in err.value.message()
    assert send(client, "seq_oldest", [3, 4], "5103") == [3, 7 + 5103]    # right types run


def _failures(srv, model) -> tuple[int, dict]:
    """(the statistics' fail count, nv_inference_request_failure per reason) of ``model``."""
    stats = httpclient.InferenceServerClient(srv.url).get_inference_statistics(model)
    fail = int(stats["model_stats"][0]["inference_stats"]["fail"]["count"])
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
        text = r.read().decode()
    reasons = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'nv_inference_request_failure\{model="%s",reason="(\w+)",version="1"\} (\S+)' % model,
        text)}
    return fail, reasons


def test_requests_the_sequence_batcher_refuses_are_not_counted_as_failures(srv):
    """Triton's SequenceBatchScheduler::Enqueue returns these errors to the caller before
    the request is queued (InferenceRequest::Run: FAILED_ENQUEUE): neither the statistics'
    fail count nor nv_inference_request_failure counts them."""
    client = httpclient.InferenceServerClient(srv.url)
    before = _failures(srv, "seq_direct")
    with pytest.raises(InferenceServerException, match="must specify the START flag"):
        infer(client, "seq_direct", 1, 5200)
    with pytest.raises(InferenceServerException, match="non-zero or non-empty correlation"):
        infer(client, "seq_direct", 1, 0, start=True)
    two = httpclient.InferInput("INPUT", [2, 1], "INT32")
    two.set_data_from_numpy(np.full((2, 1), 1, np.int32))
    with pytest.raises(InferenceServerException, match="must specify batch-size 1"):
        client.infer("seq_direct", [two], sequence_id=5201, sequence_start=True)
    assert len(before[1]) == 4      # every reason is on /metrics
    assert _failures(srv, "seq_direct") == before


def test_idle_sequence_times_out(srv):
    client = httpclient.InferenceServerClient(srv.url)
    assert infer(client, "seq_one_quick", 5, 3000, start=True) == 5
    time.sleep(0.8)                              # max_sequence_idle_microseconds: 400 ms
    with pytest.raises(InferenceServerException) as err:
        infer(client, "seq_one_quick", 1, 3000)
    assert "inference request for sequence 3000 to model 'seq_one_quick' must specify the " \
           "START flag" in err.value.message()
    assert infer(client, "seq_one_quick", 9, 3000, start=True, end=True) == 9 + 3000


def test_backlog_waits_for_a_free_slot(srv):
    client = httpclient.InferenceServerClient(srv.url)
    assert infer(client, "seq_one", 1, 4000, start=True) == 1
    done = []
    waiter = threading.Thread(target=lambda: done.append(
        infer(httpclient.InferenceServerClient(srv.url), "seq_one", 50, 4001, True,
              True)))
    waiter.start()
    wait_pending(srv, "seq_one", 1)
    assert done == []                            # the only slot is 4000's
    assert infer(client, "seq_one", 2, 4000, end=True) == 3 + 4000
    waiter.join(10)
    assert done == [50 + 4001]


def test_backlogged_sequence_gets_the_slot_of_an_idle_one(srv):
    client = httpclient.InferenceServerClient(srv.url)
    assert infer(client, "seq_one_quick", 1, 4100, start=True) == 1
    t0 = time.monotonic()
    assert infer(client, "seq_one_quick", 7, 4101, start=True, end=True) == 7 + 4101
    assert 0.2 < time.monotonic() - t0 < 5       # 4100 idled out (400 ms) first


@pytest.mark.parametrize("model,initial", [("seq_state_py", 0), ("seq_state_onnx", 100)])
def test_implicit_state_accumulates_and_resets_on_start(srv, model, initial):
    client = httpclient.InferenceServerClient(srv.url)

    def run(cid, values):
        c = httpclient.InferenceServerClient(srv.url)
        return [infer(c, model, v, cid, i == 0, i == len(values) - 1)
                for i, v in enumerate(values)]

    seqs = {5000: [1, 2, 3, 4, 5], 5001: [10, 20, 30], 5002: [-1, -1, -1, -1]}
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(seqs, pool.map(lambda c: run(c, seqs[c]), seqs)))
    for cid, values in seqs.items():
        assert results[cid] == list(initial + np.cumsum(values)), cid
    # a new START of the same id starts from the initial state again
    assert infer(client, model, 3, 5000, start=True) == initial + 3
    assert infer(client, model, 3, 5000, end=True) == initial + 6


def test_state_outputs_are_not_returned(srv):
    client = httpclient.InferenceServerClient(srv.url)
    inp = httpclient.InferInput("INPUT", [1, 1], "INT32")
    inp.set_data_from_numpy(np.ones((1, 1), np.int32))
    result = client.infer("seq_state_onnx", [inp], sequence_id=6000, sequence_start=True,
                          sequence_end=True)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["OUTPUT"]


@pytest.mark.parametrize("model", ["seq_state_out_py", "seq_state_out_onnx"])
def test_a_state_output_that_is_also_a_config_output_is_returned(srv, model):
    """Triton QA's test_request_output: a state output listed among the config outputs is
    an output like any other (all outputs by default, or when named), and still the state."""
    client = httpclient.InferenceServerClient(srv.url)

    def step(value, outputs, **flags):
        inp = httpclient.InferInput("INPUT", [1, 1], "INT32")
        inp.set_data_from_numpy(np.full((1, 1), value, np.int32))
        wanted = [httpclient.InferRequestedOutput(n) for n in outputs] or None
        result = client.infer(model, [inp], outputs=wanted, sequence_id=6100, **flags)
        return {o["name"]: int(result.as_numpy(o["name"])[0][0])
                for o in result.get_response()["outputs"]}

    assert step(1, [], sequence_start=True) == {"OUTPUT": 1, "OUTPUT_STATE": 1}
    assert step(2, ["OUTPUT_STATE", "OUTPUT"]) == {"OUTPUT_STATE": 3, "OUTPUT": 3}
    assert step(3, ["OUTPUT"]) == {"OUTPUT": 6}
    assert step(4, ["OUTPUT_STATE"], sequence_end=True) == {"OUTPUT_STATE": 10}


def test_batch_statistics_count_the_not_ready_rows_as_tritons(srv):
    """Triton hands the backend a null request per not-ready row, and the backend reports
    its whole batch (python_backend's total_batch_size): B alone in slot 1 is an execution
    of batch size 2 in batch_stats, while inference_count counts B only."""
    client = httpclient.InferenceServerClient(srv.url)

    def counts():
        st = client.get_inference_statistics("seq_direct")["model_stats"][0]
        return st["execution_count"], st["inference_count"], {
            int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in st["batch_stats"]}
    before = counts()
    assert infer(client, "seq_direct", 1, 7100, start=True) == 1     # slot 0: one row
    assert infer(client, "seq_direct", 2, 7101, start=True) == 2     # slot 1: rows 0 and 1
    assert infer(client, "seq_direct", 3, 7101, end=True) == 5 + 7101
    assert infer(client, "seq_direct", 4, 7100, end=True) == 5 + 7100
    deadline = time.monotonic() + 30
    while (after := counts())[0] < before[0] + 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert after[:2] == (before[0] + 4, before[1] + 4)
    grown = {n: c - before[2].get(n, 0) for n, c in after[2].items() if c != before[2].get(n, 0)}
    assert sum(grown.values()) == 4       # (slots 0 and 1 when no other sequence is live)
    assert sum(c for n, c in grown.items() if n >= 2) >= 2, grown     # B's two, padded


def test_not_ready_rows_are_neither_answered_nor_counted(srv):
    """B alone in slot 1 runs with a not-ready row for idle slot 0 (A waits for its END)."""
    client = httpclient.InferenceServerClient(srv.url)
    before = client.get_inference_statistics("seq_direct")["model_stats"][0]
    assert infer(client, "seq_direct", 1, 7000, start=True) == 1
    assert infer(client, "seq_direct", 2, 7001, start=True) == 2
    assert infer(client, "seq_direct", 3, 7001, end=True) == 5 + 7001
    assert infer(client, "seq_direct", 4, 7000, end=True) == 5 + 7000
    # the answer leaves the worker before the scheduler counts its execution: wait for
    # the count to reach +4, then check it did not go past (no not-ready row counted)
    deadline = time.monotonic() + 30
    while True:
        after = client.get_inference_statistics("seq_direct")["model_stats"][0]
        if after["inference_count"] >= before["inference_count"] + 4 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert after["inference_count"] == before["inference_count"] + 4


def _batch_sizes(client, model):
    st = client.get_inference_statistics(model)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in st["batch_stats"]}


def test_direct_waits_for_its_minimum_slot_utilization(srv):
    """Triton QA's test_queue_delay_full_min_util, without timing: with
    ``minimum_slot_utilization: 1`` a lone sequence's request waits (up to the queue delay,
    30 s here) until the other slot has one too, and both run as one batch of two."""
    client = httpclient.InferenceServerClient(srv.url, concurrency=2)

    def send(value, corrid, **flags):
        inp = httpclient.InferInput("INPUT", [1, 1], "INT32")
        inp.set_data_from_numpy(np.full((1, 1), value, np.int32))
        return client.async_infer("seq_util", [inp], sequence_id=corrid, **flags)

    first = send(1, 8001, sequence_start=True, sequence_end=True)
    wait_pending(srv, "seq_util", 1)
    second = send(11, 8002, sequence_start=True, sequence_end=True)
    assert int(first.get_result().as_numpy("OUTPUT")[0][0]) == 1 + 8001
    assert int(second.get_result().as_numpy("OUTPUT")[0][0]) == 11 + 8002
    assert _batch_sizes(client, "seq_util") == {2: 1}


def test_direct_runs_below_its_slot_utilization_once_the_queue_delay_passed(srv):
    client = httpclient.InferenceServerClient(srv.url)
    assert infer(client, "seq_util_quick", 3, 8101, start=True, end=True) == 3 + 8101
    assert _batch_sizes(client, "seq_util_quick") == {1: 1}
