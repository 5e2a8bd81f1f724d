"""Triton's statistics of ensemble requests (the composing models count their own).

A request counts once it ended: a success as one execution with the request's
whole time and its steps' compute times summed (Triton's RequestTracker), a
failure with its time only. Each step's compute times come with its Executed.
"""
from __future__ import annotations

from tritond import messages

from .ensemble import Run


def add_compute(run: Run, st: messages.ExecStats) -> None:
    compute = run.compute
    compute[0] += st.compute_input_ns
    compute[1] += st.compute_infer_ns
    compute[2] += st.compute_output_ns


def record_success(run: Run, now_ns: int, epoch_offset_ns: int) -> None:
    req = run.req
    ci, cf, co = run.compute
    run.model.stats.executed(max(1, req.batch), 1, 0, now_ns - (req.arrival_ns or now_ns),
                             ci, cf, co, (now_ns + epoch_offset_ns) // 1_000_000)
    run.done = False


def record_failure(run: Run, now_ns: int) -> None:
    req = run.req
    run.model.stats.failed(1, now_ns - (req.arrival_ns or now_ns))
