"""The process shell, end to end: we play parent, frontend and worker."""
import multiprocessing
import os
import time
import uuid

from tritond import channel, messages
from tritond.options import Options
from tritond.endpoint import SyncEndpoint
from tritond.errors import Code
from tritond.procutil import Bootstrap
from tritond.scheduler import proc

from .helpers import config, full_request, request, table


def receive(endpoint: SyncEndpoint, kind, timeout: float = 10.0):
    """The first message of ``kind`` (others are kept out of the way: a test failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in endpoint.recv(timeout=0.1):
            assert isinstance(msg, kind), f"expected {kind.__name__}, got {msg!r}"
            return msg
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


def test_scheduler_process_round_trip():
    sid = uuid.uuid4().hex[:8]
    addr = {role: channel.address(sid, role) for role in ("parent", "scheduler", "frontend-0", "w0", "w1")}
    parent = SyncEndpoint(addr["parent"], messages.TO_PARENT)
    frontend = SyncEndpoint(addr["frontend-0"], messages.TO_FRONTEND)
    worker = SyncEndpoint(addr["w0"], messages.TO_WORKER)
    slow = SyncEndpoint(addr["w1"], messages.TO_WORKER)
    boot = Bootstrap(role="scheduler", name="scheduler", address=addr["scheduler"],
                     parent=addr["parent"], server_id=sid, parent_pid=os.getpid())
    child = multiprocessing.get_context("spawn").Process(target=proc.main, args=(boot,))
    child.start()
    try:
        hello = receive(parent, messages.Hello)
        assert (hello.role, hello.name, hello.pid, hello.address) == (
            "scheduler", "scheduler", child.pid, addr["scheduler"])
        sched = hello.address
        parent.send_now(sched, [
            messages.Setup(options=Options(), server_id=sid, parent=addr["parent"],
                           scheduler=sched, frontends=[addr["frontend-0"]]),
            table(("m", 1, config(8, {}), [addr["w0"]]),
                  ("d", 1, config(8, {"max_queue_delay_microseconds": 20_000}), [addr["w1"]]))])
        req = request(7, batch=1, frontend=addr["frontend-0"], arrival_ns=time.monotonic_ns())
        frontend.send_now(sched, [req, request(8, model="gone", frontend=addr["frontend-0"])])

        rejected = receive(frontend, messages.Response)
        assert (rejected.rid, rejected.error.code) == (8, Code.UNAVAILABLE)
        execute = receive(worker, messages.Execute)
        assert [r.rid for r in execute.requests] == [7]
        stats = messages.ExecStats(1, 10, 20, 30, time.monotonic_ns(), time.monotonic_ns())
        worker.send_now(sched, [messages.Executed(addr["w0"], execute.batch_id, stats)])

        deadline = time.monotonic() + 10
        while True:   # Executed and Query travel on different sockets: poll until counted
            frontend.send_now(sched, [messages.StatsQuery(qid=1, frontend=addr["frontend-0"],
                                                          name="m")])
            answer = receive(frontend, messages.StatsAnswer)
            (s,) = answer.stats["model_stats"]
            if s["execution_count"] == 1 or time.monotonic() > deadline:
                break
        assert answer.qid == 1 and answer.error is None
        assert s["execution_count"] == 1 and s["inference_stats"]["success"]["count"] == 1

        frontend.send_now(sched, [messages.StatsQuery(qid=2, frontend=addr["frontend-0"],
                                                      name="nope")])
        bad = receive(frontend, messages.StatsAnswer)
        assert bad.qid == 2 and bad.error.code == Code.INVALID_ARG

        def dispatched(rid: int) -> messages.Execute:
            frontend.send_now(sched, [request(rid, batch=1, frontend=addr["frontend-0"],
                                              arrival_ns=time.monotonic_ns())])
            return receive(worker, messages.Execute)

        def query(qid: int) -> messages.StatsQuery:
            return messages.StatsQuery(qid=qid, frontend=addr["frontend-0"], name="m")

        # a query read together with an Executed behind it is answered after it
        execute = dispatched(10)
        stats = messages.ExecStats(1, 10, 20, 30, time.monotonic_ns(), time.monotonic_ns())
        worker.send_now(sched, [query(3), messages.Executed(addr["w0"], execute.batch_id, stats)])
        answer = receive(frontend, messages.StatsAnswer)
        assert answer.qid == 3 and answer.stats["model_stats"][0]["execution_count"] == 2

        # a query asked while a batch executes waits for its Executed (the client may
        # already have that batch's response: the worker writes it first)
        execute = dispatched(11)
        frontend.send_now(sched, [query(4)])
        time.sleep(0.02)
        assert not frontend.recv(timeout=0.02)      # held: it would count 2 executions
        worker.send_now(sched, [messages.Executed(addr["w0"], execute.batch_id, stats)])
        answer = receive(frontend, messages.StatsAnswer)
        assert answer.qid == 4 and answer.stats["model_stats"][0]["execution_count"] == 3

        # ... but no longer than its bound: a batch that runs on is not waited for
        execute = dispatched(12)
        frontend.send_now(sched, [query(5)])
        answer = receive(frontend, messages.StatsAnswer)
        assert answer.qid == 5 and answer.stats["model_stats"][0]["execution_count"] == 3
        worker.send_now(sched, [messages.Executed(addr["w0"], execute.batch_id, stats)])

        # a delay window closes with no further message: the shell's alarm fires
        sent = time.monotonic_ns()
        # every field set: what the scheduler does not read reaches the worker as sent,
        # though more frames arrive while the request waits (its Raw parts are views)
        full = full_request(9, model="d", batch=1, frontend=addr["frontend-0"],
                            inputs=("A", "B"), correlation_id="c", flags=1, priority=1)
        full.outputs = [messages.OutputSpec("OUT")]
        full.parameters = {"custom": [1, "x"]}
        full.request_id = "req-9"
        frontend.send_now(sched, [full])
        for rid in range(100, 110):
            frontend.send_now(sched, [messages.Cancel(addr["frontend-0"], rid)])
        late = receive(slow, messages.Execute)
        waited = time.monotonic_ns() - sent
        assert late.requests == [full]
        assert 20_000_000 <= waited < 1_000_000_000

        parent.send_now(sched, [messages.Shutdown(reason="test")])
        assert receive(parent, messages.Stopped).name == "scheduler"
        child.join(10)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        for endpoint in (parent, frontend, worker, slow):
            endpoint.close()


def test_scheduler_answers_unknown_and_keeps_the_good_message():
    import msgspec

    sid = uuid.uuid4().hex[:8]
    addr = {role: channel.address(sid, role) for role in ("parent", "scheduler", "frontend-0")}
    parent = SyncEndpoint(addr["parent"], messages.TO_PARENT)
    frontend = SyncEndpoint(addr["frontend-0"], messages.TO_FRONTEND)
    boot = Bootstrap(role="scheduler", name="scheduler", address=addr["scheduler"],
                     parent=addr["parent"], server_id=sid, parent_pid=os.getpid())
    child = multiprocessing.get_context("spawn").Process(target=proc.main, args=(boot,))
    child.start()
    try:
        sched = receive(parent, messages.Hello).address
        garbage = msgspec.Raw(msgspec.msgpack.encode([999, "junk"]))
        wrong = messages.Hello("frontend", "frontend-0", os.getpid(), addr["frontend-0"])
        good = messages.StatsQuery(qid=5, frontend=addr["frontend-0"])
        frontend.send_now(sched, [garbage, wrong, good])   # one frame
        got: list = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += frontend.recv(timeout=0.1)
        details = sorted(m.detail for m in got if type(m) is messages.Unknown)
        assert len(details) == 2 and details[0].startswith("undecodable message")
        assert details[1] == "unexpected Hello message for the scheduler process"
        (answer,) = [m for m in got if type(m) is messages.StatsAnswer]
        assert answer.qid == 5 and answer.error is None and answer.stats == {"model_stats": []}
        parent.send_now(sched, [messages.Shutdown(reason="test")])
        assert receive(parent, messages.Stopped).name == "scheduler"
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
        parent.close()
        frontend.close()


def test_an_ensemble_query_waits_for_the_requests_answered_but_not_yet_counted():
    """An ensemble has no instance: its success counts at its final step's Executed,
    after the client has the answer (the step's worker answers it directly, then sends
    the scheduler its receipt). A query on the ensemble asked meanwhile waits for it."""
    from tests.specs import spec

    sid = uuid.uuid4().hex[:8]
    addr = {role: channel.address(sid, role) for role in ("parent", "scheduler", "frontend-0", "w0")}
    parent = SyncEndpoint(addr["parent"], messages.TO_PARENT)
    frontend = SyncEndpoint(addr["frontend-0"], messages.TO_FRONTEND)
    worker = SyncEndpoint(addr["w0"], messages.TO_WORKER)
    boot = Bootstrap(role="scheduler", name="scheduler", address=addr["scheduler"],
                     parent=addr["parent"], server_id=sid, parent_pid=os.getpid())
    io = ('input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ] '
          'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] } ]')
    ident = spec('name: "ident" backend: "python" ' + io)
    pipe = spec('name: "pipe" platform: "ensemble" ' + io + ' ensemble_scheduling { step [ '
                '{ model_name: "ident" model_version: -1 input_map { key: "INPUT0" value: '
                '"INPUT0" } output_map { key: "OUT" value: "OUT" } } ] }')
    child = multiprocessing.get_context("spawn").Process(target=proc.main, args=(boot,))
    child.start()
    try:
        sched = receive(parent, messages.Hello).address
        parent.send_now(sched, [
            messages.Setup(options=Options(), server_id=sid, parent=addr["parent"],
                           scheduler=sched, frontends=[addr["frontend-0"]]),
            table(("ident", 1, ident, [addr["w0"]]), ("pipe", 1, pipe, []))])

        def query(qid: int) -> messages.StatsQuery:
            return messages.StatsQuery(qid=qid, frontend=addr["frontend-0"], name="pipe")

        def successes(answer) -> int:
            (s,) = answer.stats["model_stats"]
            return s["inference_stats"]["success"]["count"]

        stats = messages.ExecStats(1, 10, 20, 30, time.monotonic_ns(), time.monotonic_ns())
        for rid, query_first in ((1, True), (2, False)):
            frontend.send_now(sched, [request(rid, model="pipe", version=1,
                                              frontend=addr["frontend-0"],
                                              arrival_ns=time.monotonic_ns())])
            execute = receive(worker, messages.Execute)
            (step,) = execute.requests
            assert step.answer is not None and step.answer.rid == rid   # answers the client
            receipt = messages.Response(step.rid, instance=addr["w0"], empty=True)
            # the worker answered the client; the client asks before (1) or after (2)
            # the scheduler has the receipt, and before it has the step's Executed
            if query_first:
                frontend.send_now(sched, [query(rid)])
                worker.send_now(sched, [receipt])
            else:
                worker.send_now(sched, [receipt])
                frontend.send_now(sched, [query(rid)])
            time.sleep(0.02)
            assert not frontend.recv(timeout=0.02)   # held: it would count rid - 1
            worker.send_now(sched, [messages.Executed(addr["w0"], execute.batch_id, stats)])
            answer = receive(frontend, messages.StatsAnswer)
            assert answer.qid == rid and successes(answer) == rid

        parent.send_now(sched, [messages.Shutdown(reason="test")])
        assert receive(parent, messages.Stopped).name == "scheduler"
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
        for endpoint in (parent, frontend, worker):
            endpoint.close()
