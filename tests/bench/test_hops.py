"""bench/hops.py: the per-request hop timeline built from perf's event lines."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "hops.py"
_spec = importlib.util.spec_from_file_location("hops", _PATH)
hops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hops)

W, F, S, K = 10, 20, 30, 40
TIDS = {W: hops.CLIENT, F: hops.FRONTEND, S: hops.SCHEDULER, K: hops.WORKER}


def send(tid: int, t_us: float, nr: int = 1) -> str:
    return f"  x {tid}/{tid} [000] {t_us / 1e6:.6f}: raw_syscalls:sys_enter: NR {nr} (3, 0, 40)"


def switch(t_us: float, prev: int, nxt: int, state: str = "S", cpu: int = 0) -> str:
    return (f"  x {prev}/{prev} [00{cpu}] {t_us / 1e6:.6f}: sched:sched_switch: prev_comm=x "
            f"prev_pid={prev} prev_prio=120 prev_state={state} ==> next_comm=y next_pid={nxt} "
            f"next_prio=120")


def one_request(t0: float) -> list[str]:
    """client sends; the frontend wakes from idle 5 µs later, works 60 µs; the scheduler
    waits 10 µs behind it, works 20; the worker 8 + 70 (preempted once in it); the
    frontend 12 + 50; the client 20 + 10, then sends the next request."""
    return [
        send(W, t0), switch(t0 + 1, W, 0),
        switch(t0 + 5, 0, F),
        send(F, t0 + 65), switch(t0 + 75, F, S),
        send(S, t0 + 95), switch(t0 + 103, S, K),
        switch(t0 + 130, K, 99, state="R"), switch(t0 + 140, 99, K),
        send(K, t0 + 173), send(K, t0 + 180, nr=44), switch(t0 + 185, K, F),
        send(F, t0 + 235), switch(t0 + 255, F, W),
    ]


def test_segments_of_each_request() -> None:
    lines = one_request(1000) + one_request(1265) + [send(W, 1530)]
    segs, (idle, held), cuts, cycles, dropped = hops.chains(hops.parse("\n".join(lines), TIDS))
    assert dropped == 0
    assert cycles == pytest.approx([265, 265])
    assert [v[0] for v in segs] == pytest.approx([5, 60, 10, 20, 8, 70, 12, 50, 20, 10])
    assert idle[0] == 2 and idle[2] == 0          # the frontend woke on an idle CPU
    assert cuts[5] == 2 and cuts[1] == 0          # the worker was preempted in its work
    # the frontend ran 10 µs after sending its Request, the worker 12 after its Response
    assert [v[0] for v in held[0::2]] == pytest.approx([1, 10, 8, 12, 20])


def test_a_peer_already_running_has_no_wake_latency() -> None:
    lines = one_request(1000)
    # the scheduler is still on a CPU (finishing its last turn) when the Request comes
    lines.insert(3, switch(1002, 99, S, cpu=1))
    lines[5] = switch(1075, F, 0)
    lines[7] = switch(1103, S, K, cpu=1)
    lines += [send(W, 1265)]
    segs, _, _, cycles, _ = hops.chains(hops.parse("\n".join(lines), TIDS))
    assert len(cycles) == 1
    assert segs[2] == [0] and segs[3] == pytest.approx([30])


def test_other_threads_and_syscalls_are_ignored() -> None:
    lines = one_request(1000) + [send(77, 1100), send(F, 1264, nr=0), send(W, 1265)]
    lines.sort(key=lambda line: float(line.split("]")[1].split(":")[0]))
    _, _, _, cycles, _ = hops.chains(hops.parse("\n".join(lines), TIDS))
    assert cycles == pytest.approx([265])
