"""HTTP ``generate_stream`` (Server-Sent Events) with an iterative decoupled model (issue 11):
one event per reschedule, an error mid-way, a client that disconnects mid-stream; a real
tritond read by a plain HTTP client."""
from __future__ import annotations

import http.client
import json
import re

import pytest

from tests.integration.iterative_repo import write
from tests.server import Server, segments_of


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = Server([write(tmp_path_factory.mktemp("itgen"),
                        names=["iterative_sequence", "iterative_one"])])
    yield srv
    srv.stop()


def _post(srv, model, doc):
    host, port = srv.url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", f"/v2/models/{model}/generate_stream", body=json.dumps(doc),
                 headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


def _events(resp) -> list:
    out = []
    for block in resp.read().decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            out.append(json.loads(block[len("data: "):]))
    return out


def _stream(srv, model, n) -> list:
    conn, resp = _post(srv, model, {"IN": n})
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        return _events(resp)
    finally:
        conn.close()


def _countdown(events, n) -> int:
    assert [e["OUT"] for e in events] == list(range(n - 1, -1, -1)), events
    assert [e["STARTED"] for e in events] == [1] + [0] * (n - 1), events
    corrids = {e["CORRID"] for e in events}
    assert len(corrids) == 1 and 0 not in corrids, events
    assert all(e["model_name"] == events[0]["model_name"] for e in events)
    return corrids.pop()


def test_one_event_per_reschedule_each_request_a_sequence_of_its_own(served):
    first = _countdown(_stream(served, "iterative_sequence", 4), 4)
    second = _countdown(_stream(served, "iterative_sequence", 2), 2)
    assert first != second


def test_an_error_mid_way_is_the_last_event_and_frees_the_slot(served):
    events = _stream(served, "iterative_one", 3003)          # raises at its second step
    assert [e.get("OUT") for e in events[:1]] == [2] and len(events) == 2, events
    assert re.search(r"step 2 of sequence \d+ failed", events[1]["error"]), events
    _countdown(_stream(served, "iterative_one", 2), 2)       # one slot: it was freed


def test_a_client_disconnect_mid_stream_frees_the_slot_and_leaves_no_shm(served):
    _countdown(_stream(served, "iterative_one", 2), 2)       # every arena exists now
    before = sorted(segments_of(served.proc.pid))
    conn, resp = _post(served, "iterative_one", {"IN": 1900})   # 900 steps of 0.05 s
    assert resp.status == 200
    assert resp.read(6) == b"data: "
    conn.sock.shutdown(2)
    conn.close()
    # One slot: this waits in the backlog until the abandoned sequence gave it back.
    _countdown(_stream(served, "iterative_one", 3), 3)
    assert sorted(segments_of(served.proc.pid)) == before   # no segment made or left
