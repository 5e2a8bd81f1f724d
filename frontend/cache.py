"""The response cache: ``response_cache { enable: true }`` with ``--cache-config local,size=N``.

Where: in the frontends, in front of the InferClient, over one store in shared
memory (``tritond.shm.lru``: created by the parent, mapped by every frontend and
by the workers of cached models), so an answer one frontend cached is a hit on
all of them. A frontend holds a request's input bytes before they are staged and
its outputs once they come back, so a hit is answered from here: no input is
copied to shared memory, no message reaches the scheduler or a worker. Ensemble
steps and BLS calls never pass a frontend: the callee's worker looks them up in
the same store (``workers/cachelookup.py``).

Key (``tritond/cacheentry.py``, shared with the workers): a BLAKE2b digest of
the model key, version, each input (name, datatype, shape,
bytes; BYTES tensors in their serialised form; an input in client shared memory
is read with ``pread``), the requested outputs (names, classification; every output
asked for plainly keys as none) and the parameters the model sees. Every request of a ``preserve_ordering`` model
bypasses the cache (counted neither hit nor miss). A miss runs the request and
inserts a copy of its outputs (an output written into a client's region is read
back from it); a hit writes such an output into the region the request names.
The least recently used entries are evicted to stay within ``size`` bytes (an
entry bigger than that is not kept: logged as Triton's "Failed to insert key"). Statistics follow Triton's
UpdateSuccessCacheHit/Miss: a hit counts a success, its request duration and
cache_hit; a miss counts cache_miss with the lookup + insertion time (also added
to the request duration). Each frontend counts its own; statistics and
/metrics sum every frontend's (``FrontendStatsQuery``). With
``--metrics-config summary_latencies=true`` the same durations (hit: the lookup;
miss: lookup + insertion) also go into per version sliding windows, Triton's
``nv_cache_hit_summary_per_model`` / ``nv_cache_miss_summary_per_model``; a scrape
merges every frontend's live observations before reading the quantiles.
"""
from __future__ import annotations

import logging
import time

from tritond import cacheentry
from tritond.errors import TritonError
from tritond.options import cache_bytes
from tritond.scheduler.summary import Window
from tritond.shm import dtypes, lru, region

from . import tracepoints
from .params import request_fields
from .types import InferRequest, InferResult, OutputTensor

cache_size = cache_bytes        # the name the tests and docs use
log = logging.getLogger("tritond.frontend")


def encode(result: InferResult, outputs: list[bytes]) -> bytes:
    """An entry (tritond/cacheentry.py) of ``result`` whose outputs' bytes are ``outputs``."""
    return cacheentry.encode(result.model_version, result.parameters,
                             [(o.name, o.datatype, o.shape, b)
                              for o, b in zip(result.outputs, outputs)])


def decode(blob, mv, req: InferRequest, shm) -> InferResult | None:
    """The result a hit answers; an output the request wants in client shared memory is
    written there (None when it does not fit: the uncached path reports that)."""
    version, parameters, metas = cacheentry.decode(blob)
    requested = {o.name: o for o in req.outputs} if req.outputs else {}
    outs = []
    for name, dtype, shape, data in metas:
        want = requested.get(name)
        if want is not None and want.shm is not None:
            if len(data) > want.shm.byte_size:
                return None
            shm.write_output(want.shm, data)
            data = None
        outs.append(OutputTensor(name, dtype, shape, data, want))
    if len(outs) > 1:       # in the order asked (else the model's), as an answer that ran
        order = {name: i for i, name in enumerate(requested or mv.outputs)}
        outs.sort(key=lambda o: order.get(o.name, len(order)))
    return InferResult(mv.name, version, req.id, parameters, outs)


def request_key(mv, req: InferRequest, read=None) -> bytes | None:
    """The cache key of ``req`` on ``mv`` (tritond/cacheentry.py: a worker keys an ensemble
    step or BLS call the same way); None when it cannot be cached: an input in client
    shared memory without ``read`` (ShmRef -> bytes), or parameters that fail to parse."""
    inputs = []
    for t in req.inputs:
        if t.shm is not None:
            if read is None:
                return None
            inputs.append((t.name, t.datatype, t.shape, read(t.shm)))
        else:
            inputs.append((t.name, t.datatype, t.shape, t.data))
    custom = None
    if req.parameters:      # only what reaches the model (not binary_data_output, priority...)
        try:
            custom = request_fields(req.parameters)[4]
        except TritonError:
            return None         # the uncached path answers the error
    return cacheentry.key(mv.key, mv.version, inputs,
                          [(o.name, o.classification) for o in req.outputs or ()], mv.outputs,
                          custom)


def output_bytes(result: InferResult, shm) -> list[bytes] | None:
    """Each output's bytes (read back from client shared memory where it was written)."""
    out = []
    for o in result.outputs:
        if o.data is not None and (o.requested is None or o.requested.shm is None):
            out.append(o.data)
            continue
        if o.requested is None or o.requested.shm is None:
            return None
        region = shm.read_output(o.requested.shm)
        size = dtypes.byte_size(o.datatype, o.shape)
        if size is None:        # BYTES: as many serialised elements as the shape says
            size = _serialized_length(region, dtypes.num_elements(o.shape))
        out.append(region[:size])
    return out


def _serialized_length(buf: bytes, count: int) -> int:
    pos = 0
    for _ in range(count):
        pos += 4 + int.from_bytes(buf[pos:pos + 4], "little")
    return pos


def open_store(options, server_id: str, tag: str, segment: str) -> tuple:
    """(the store to use or None, a segment made here that its owner unlinks or None): the
    shared one the parent made (``segment``, from Setup.cache); a frontend started
    without one (unit tests, an in-process core) makes its own."""
    size = cache_bytes(options.cache_config)
    if not size:
        return None, None
    own = None
    if not segment:
        segment = region.segment_name(server_id, "cache-" + tag)
        own = lru.create(segment, size)
    return lru.SharedLru.attach(segment), own


class ResponseCache:
    """One frontend's view of the shared store and its own per model version statistics."""

    def __init__(self, store, summaries: bool = False) -> None:
        self.store = store          # tritond.shm.lru.SharedLru, or None: no cache
        # (model, version) -> [hits, hit ns, misses, miss ns, hit request ns]
        self.counts: dict[tuple[str, str], list[int]] = {}
        # summary_latencies=true: (model, version) -> {"hit": Window, "miss": Window} (us)
        self.windows: dict[tuple[str, str], dict[str, Window]] | None = (
            {} if summaries else None)

    def applies(self, mv) -> bool:
        return self.store is not None and mv.response_cache

    async def infer(self, core, mv, req: InferRequest) -> InferResult:
        start = time.monotonic_ns()
        # preserve_ordering: a hit would overtake the requests before it (not cached yet).
        key = None if mv.preserve_ordering else request_key(mv, req, core.shm.read_input)
        if key is None:
            return await core.infer(req, mv, False)
        lookup = time.monotonic_ns()
        blob = self.store.get(key)
        looked = time.monotonic_ns()
        counts = self.counts.setdefault((mv.name, mv.version_str), [0, 0, 0, 0, 0])
        result = decode(blob, mv, req, core.shm) if blob is not None else None
        if result is not None:
            end = time.monotonic_ns()
            counts[0] += 1
            counts[1] += looked - start
            counts[4] += end - start
            self._observe(mv, "hit", looked - start, end)
            if req.trace is not None:   # Triton's trace of a hit: no COMPUTE_*
                tracepoints.cache_hit(core, mv, req, result, start, lookup)
            return result
        result = await core.infer(req, mv, False)
        insert = time.monotonic_ns()
        outputs = output_bytes(result, core.shm)
        if outputs is not None:
            blob = encode(result, outputs)
            if not self.store.put(key, blob):   # Triton logs its failed insertions too
                log.error("Failed to insert key [%s] into response cache: an entry of %d bytes "
                          "does not fit the cache", key.hex(), len(blob))
        done = time.monotonic_ns()
        counts[3] += (looked - start) + (done - insert)
        counts[2] += 1
        self._observe(mv, "miss", (looked - start) + (done - insert), done)
        return result

    def _observe(self, mv, kind: str, ns: int, now_ns: int) -> None:
        if self.windows is None:
            return
        key = (mv.name, mv.version_str)
        pair = self.windows.get(key)
        if pair is None:
            pair = self.windows[key] = {"hit": Window(), "miss": Window()}
        pair[kind].observe(ns / 1000, now_ns)        # microseconds, as Triton

    def summary_rows(self) -> list[list]:
        """This frontend's windows as FrontendStatsAnswer.summaries rows: [model, version,
        "hit"|"miss", count, sum us, live observations...]."""
        now = time.monotonic_ns()       # CLOCK_MONOTONIC: one clock for every process
        return [[m, v, kind, w.count, w.sum, *w.live(now)]
                for (m, v), pair in (self.windows or {}).items() for kind, w in pair.items()]

    def enabled(self, models) -> set[tuple[str, str]]:
        """(model, version) of every loaded version whose responses are cached."""
        return {(mv.name, mv.version_str) for mv in models.all_versions() if self.applies(mv)}

    def rows(self) -> list[list]:
        """This frontend's counts as FrontendStatsAnswer.cache rows."""
        return [[m, v, *c] for (m, v), c in self.counts.items()]

    def merge(self, stats: dict, enabled: set, rows: list | None = None) -> dict:
        """Add the cache's counts (``rows``: every frontend's, default this one's) to the
        scheduler's ``{"model_stats": [...]}`` (in place)."""
        totals: dict[tuple[str, str], list[int]] = {}
        for m, v, *c in self.rows() if rows is None else rows:
            row = totals.setdefault((m, v), [0] * 5)
            for i, n in enumerate(c):
                row[i] += n
        for s in stats.get("model_stats", []) if enabled else ():
            key = (s.get("name"), s.get("version"))
            if key not in enabled:
                continue
            hits, hit_ns, misses, miss_ns, hit_request_ns = totals.get(key, (0,) * 5)
            inf = s["inference_stats"]
            # added to the scheduler's own counts: the workers' lookups of ensemble steps
            # and BLS calls (workers/cachelookup.py), success included there already
            hit, miss = inf["cache_hit"], inf["cache_miss"]
            inf["cache_hit"] = {"count": hit["count"] + hits, "ns": hit["ns"] + hit_ns}
            inf["cache_miss"] = {"count": miss["count"] + misses, "ns": miss["ns"] + miss_ns}
            inf["success"] = {"count": inf["success"]["count"] + hits,
                              "ns": inf["success"]["ns"] + hit_request_ns + miss_ns}
            # Triton's UpdateSuccessCacheHit counts a queue duration too (from enqueue to
            # the lookup: nothing here, a frontend looks up before anything is queued)
            inf["queue"] = {"count": inf["queue"]["count"] + hits, "ns": inf["queue"]["ns"]}
        return stats
