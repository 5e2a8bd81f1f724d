"""Per model-version statistics in Triton's shape.

Counters are plain ints on a slotted object (no dicts on the hot path). A
duration stat is a ``[count, ns]`` list. Following Triton, ``queue`` and the
request-level ``compute_*`` stats count successful requests only, and every
request of a batch is charged the batch's compute durations.
"""
from __future__ import annotations

from typing import Any

from tritond import messages
from tritond.errors import invalid_arg

from .queue import SKIPPED

# Triton's failure reasons (label ``reason`` of nv_inference_request_failure), by index.
OTHER, REJECTED, CANCELED, BACKEND = range(4)
FAILURE_REASONS = ("OTHER", "REJECTED", "CANCELED", "BACKEND")

_REQUEST_FIELDS = ("success", "fail", "queue", "compute_input", "compute_infer",
                   "compute_output", "cache_hit", "cache_miss")

_RESPONSE_FIELDS = ("compute_infer", "compute_output", "success", "fail", "empty_response",
                    "cancel")


def _duration(pair: list[int]) -> dict[str, int]:
    return {"count": pair[0], "ns": pair[1]}


class ModelStats:
    """Statistics of one model version."""

    __slots__ = ("name", "version", "last_inference_ms", "inference_count",
                 "execution_count", "batches", "reasons", "responses",
                 "summary", "base") + _REQUEST_FIELDS

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version
        self.last_inference_ms = 0
        self.inference_count = 0
        self.execution_count = 0
        for field in _REQUEST_FIELDS:
            setattr(self, field, [0, 0])
        # batch size -> [ci_count, ci_ns, cf_count, cf_ns, co_count, co_ns]
        self.batches: dict[int, list[int]] = {}
        self.reasons = [0] * len(FAILURE_REASONS)    # failures per FAILURE_REASONS index
        # response index -> 6 (count, ns) pairs in _RESPONSE_FIELDS order (decoupled models)
        self.responses: dict[int, list[int]] = {}
        self.summary = None     # summary.Summaries when summary_latencies=true
        # What earlier loads of this version counted: /metrics adds it (restart())
        self.base: ModelStats | None = None

    def restart(self) -> "ModelStats":
        """The statistics of this version loaded anew (a full reload): Triton's new Model
        counts from zero in ``/v2/models/<m>/stats``, while its ``/metrics`` counters, kept
        per model and version by the metrics reporter, carry on (``to_json(totals=True)``,
        ``failures(totals=True)``). The latency summaries carry on too."""
        fresh = ModelStats(self.name, self.version)
        fresh.summary = self.summary
        base = fresh.base = ModelStats(self.name, self.version)
        for old in (self, self.base):
            if old is None:
                continue
            base.inference_count += old.inference_count
            base.execution_count += old.execution_count
            for field in _REQUEST_FIELDS:
                pair, add = getattr(base, field), getattr(old, field)
                pair[0] += add[0]
                pair[1] += add[1]
            base.reasons = [a + b for a, b in zip(base.reasons, old.reasons)]
        return fresh

    def responses_sent(self, rows) -> None:
        """Add a worker's ResponseStats rows."""
        for index, values in rows:
            acc = self.responses.get(index)
            if acc is None:
                self.responses[index] = list(values)
            else:
                for i, v in enumerate(values):
                    acc[i] += v

    def failed(self, count: int, ns: int, reason: int = OTHER) -> None:
        """``count`` requests failed after ``ns`` in total, for ``reason`` (OTHER, ...)."""
        self.fail[0] += count
        self.fail[1] += ns
        self.reasons[reason] += count

    def failures(self, totals: bool = False) -> dict[str, int]:
        """Failures per Triton reason, every reason present (Triton pre-creates them);
        ``totals``: with earlier loads' (``restart``)."""
        reasons = self.reasons
        if totals and self.base is not None:
            reasons = [a + b for a, b in zip(reasons, self.base.reasons)]
        return dict(zip(FAILURE_REASONS, reasons))

    def executed(self, batch_size: int, ok: int, queue_ns: int, total_ns: int,
                 ci_ns: int, cf_ns: int, co_ns: int, now_ms: int, rows: int = 0) -> None:
        """One execution of ``batch_size`` finished; ``ok`` of its requests succeeded.

        ``queue_ns`` and ``total_ns`` are sums over the successful requests. ``rows``: the
        batch_stats size when the batch had more rows than requests (a sequence batch's
        not-ready rows, which Triton's backends count in the batch they report).
        """
        self.inference_count += batch_size
        self.execution_count += 1
        self.last_inference_ms = now_ms
        rows = rows or batch_size
        batch = self.batches.get(rows)
        if batch is None:
            batch = self.batches[rows] = [0, 0, 0, 0, 0, 0]
        batch[0] += 1
        batch[1] += ci_ns
        batch[2] += 1
        batch[3] += cf_ns
        batch[4] += 1
        batch[5] += co_ns
        if ok:
            # unrolled: this runs once per execution on the hot path
            pair = self.success
            pair[0] += ok
            pair[1] += total_ns
            pair = self.queue
            pair[0] += ok
            pair[1] += queue_ns
            pair = self.compute_input
            pair[0] += ok
            pair[1] += ok * ci_ns
            pair = self.compute_infer
            pair[0] += ok
            pair[1] += ok * cf_ns
            pair = self.compute_output
            pair[0] += ok
            pair[1] += ok * co_ns

    def batch_done(self, batch, st, failed: list[int], now_ns: int, now_ms: int,
                   hits=(), misses=()) -> None:
        """Account a finished ``batch`` (model.Batch) from its worker's ExecStats ``st``;
        ``failed`` lists the rids that failed (a model error, a cancel); ``hits`` and
        ``misses`` the worker's response-cache lookups ((rid, ns) each, Executed)."""
        end_ns = st.end_ns or now_ns
        entries = batch.entries
        failed = set(failed) if failed else ()
        size = batch.size
        if hits or misses:
            entries, size = self._cache_done(batch, hits, misses, end_ns)
            if not entries:
                return              # every request answered from the cache: no execution
        ok = 0
        arrivals = 0
        skipped = 0
        for entry in entries:
            req = entry.req
            if req.rid in failed:
                skipped += entry.state == SKIPPED
                continue
            ok += 1
            arrivals += req.arrival_ns or entry.enqueue_ns
        if ok < len(entries):     # the model answered an error, or the worker skipped it
            self.failed(len(entries) - ok - skipped, 0, BACKEND)
            if skipped:           # cancelled before it ran (cancels.py)
                self.failed(skipped, 0, CANCELED)
        if self.summary is not None and ok:
            self._observe(entries, failed, batch.dispatch_ns, end_ns, st, now_ns)
        self.executed(size, ok, ok * batch.dispatch_ns - arrivals, ok * end_ns - arrivals,
                      st.compute_input_ns, st.compute_infer_ns, st.compute_output_ns, now_ms,
                      len(batch.rows) if batch.rows is not None else 0)

    def _cache_done(self, batch, hits, misses, end_ns: int) -> tuple[list, int]:
        """Triton's UpdateSuccessCacheHit/Miss for a worker's lookups; returns the entries
        that ran and their batch size. A hit is a success (its request and queue time:
        it waited for an instance as any request) but no inference or execution; a miss
        adds its lookup + insertion time to cache_miss and to the request duration."""
        for _, ns in misses:
            self.cache_miss[0] += 1
            self.cache_miss[1] += ns
            self.success[1] += ns
        if not hits:
            return batch.entries, batch.size
        hit = dict(hits)
        ran, size = [], batch.size
        for entry in batch.entries:
            req = entry.req
            ns = hit.get(req.rid)
            if ns is None:
                ran.append(entry)
                continue
            size -= max(req.batch, 1)
            arrival = req.arrival_ns or entry.enqueue_ns
            self.success[0] += 1
            self.success[1] += end_ns - arrival
            self.queue[0] += 1
            self.queue[1] += batch.dispatch_ns - arrival
            self.cache_hit[0] += 1
            self.cache_hit[1] += ns
        return ran, size

    def _observe(self, entries, failed, dispatch_ns: int, end_ns: int, st, now_ns: int) -> None:
        """Each successful request's latencies into the summaries (microseconds, as Triton)."""
        ci, cf, co = (st.compute_input_ns // 1000, st.compute_infer_ns // 1000,
                      st.compute_output_ns // 1000)
        observe = self.summary.observe
        for entry in entries:
            if entry.req.rid in failed:
                continue
            arrival = entry.req.arrival_ns or entry.enqueue_ns
            observe(now_ns, (end_ns - arrival) // 1000, (dispatch_ns - arrival) // 1000,
                    ci, cf, co)

    def to_json(self, totals: bool = False) -> dict[str, Any]:
        """One element of ``model_stats``; ``totals``: the counters with earlier loads'
        (``restart``), what ``/metrics`` shows."""
        base = self.base if totals else None
        inference_stats = {f: _duration(getattr(self, f)) for f in _REQUEST_FIELDS}
        if base is not None:
            inference_stats = {f: _duration([a + b for a, b in zip(getattr(self, f),
                                                                  getattr(base, f))])
                               for f in _REQUEST_FIELDS}
        return {
            "name": self.name,
            "version": str(self.version),
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count + (base.inference_count if base else 0),
            "execution_count": self.execution_count + (base.execution_count if base else 0),
            "inference_stats": inference_stats,
            "response_stats": {
                str(i): {f: {"count": r[2 * k], "ns": r[2 * k + 1]}
                         for k, f in enumerate(_RESPONSE_FIELDS)}
                for i, r in sorted(self.responses.items())},
            "batch_stats": [
                {"batch_size": size,
                 "compute_input": {"count": b[0], "ns": b[1]},
                 "compute_infer": {"count": b[2], "ns": b[3]},
                 "compute_output": {"count": b[4], "ns": b[5]}}
                for size, b in sorted(self.batches.items())],
            "memory_usage": [],
        }


def stats_json(ready: list[ModelStats], name: str = "", version: str = "",
               totals: bool = False) -> dict[str, Any]:
    """``{"model_stats": [...]}`` for the READY versions in ``ready``, filtered as Triton does
    (``totals``: /metrics' counters, ``ModelStats.restart``).

    A named model (and version, if given) with no READY match raises INVALID_ARG.
    """
    if not name:
        chosen = ready
    else:
        chosen = [s for s in ready if s.name == name and (not version or str(s.version) == version)]
        if not chosen:
            raise invalid_arg(f"requested model '{name}' is not available")
    chosen = sorted(chosen, key=lambda s: (s.name, s.version))
    return {"model_stats": [s.to_json(totals) for s in chosen]}


def model_metrics(ready: list, quantiles, direct: dict, now_ns: int) -> list:
    """messages.ModelMetrics of each model (scheduler.model.Model) in ``ready``: pending
    requests, failures per reason, latency summaries (``quantiles``: when on) and the
    requests a step's worker answered directly (``direct``, scheduler/direct.py)."""
    # pending: queued, or pipelined behind a running batch (not executing either)
    return [messages.ModelMetrics(
                m.stats.name, m.stats.version, m.policy.count + m.router.waiting(),
                m.stats.failures(totals=True),
                m.stats.summary.rows(quantiles, now_ns) if m.stats.summary is not None else {},
                direct.get((m.stats.name, m.stats.version), 0))
            for m in ready]
