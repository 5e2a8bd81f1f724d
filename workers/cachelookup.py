"""Response-cache lookups of ensemble steps and BLS calls, in the callee's worker.

Triton looks every request of a cached model up where its scheduler enqueues it,
so a composing model's cache answers ensemble steps and a BLS callee's answers
calls. In tritond a client's request is looked up by its frontend
(``frontend/cache.py``); steps and BLS calls never pass one, and the scheduler
never sees tensor bytes (architecture invariant 1). So the scheduler marks them
(``Request.cache``, only for models with ``response_cache`` under
``--cache-config``) and the worker, which maps their inputs anyway, looks them up
in the same shared store (``shm/lru.py``) under the same keys and entries
(``tritond/cacheentry.py``): an entry a frontend inserted answers a step, and
the other way round.

A hit is not run: its entry's bytes are copied as they are into this worker's
output arena (or the client region a final step's output names) through the
ordinary writer, and released as any output is. A miss runs; its outputs are
read back once written and inserted. Hits and misses go to the scheduler with
``Executed`` (Triton's UpdateSuccessCacheHit/Miss). Unlike Triton, a hit waits
for an instance like any queued request (Triton answers it at enqueue).
Requests with an input or an output in CUDA shared memory are not looked up.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Optional

from tritond import cacheentry, messages
from tritond.messages import CUDA_SHM, Response
from tritond.shm import lru

from .outputs import Encoded, OutputWriter
from .responses import error_of

log = logging.getLogger("tritond.workers.cache")


class Visit:
    """One batch's lookups: the hits to answer and the misses to insert."""

    __slots__ = ("found", "missed", "hits", "misses", "failed")

    def __init__(self) -> None:
        self.found: list[tuple[messages.Request, bytearray, int]] = []   # (req, entry, ns)
        self.missed: dict[tuple[str, int], tuple[bytes, int]] = {}       # -> (key, ns)
        self.hits: list[tuple[int, int]] = []        # Executed.hits
        self.misses: list[tuple[int, int]] = []      # Executed.misses
        self.failed: list[int] = []                  # hits that could not be written


class CacheLookup:
    """The lookups of one worker whose model has ``response_cache { enable: true }``."""

    def __init__(self, segment: str, every: tuple, segments, writer: OutputWriter,
                 instance: str) -> None:
        self.segment = segment       # Setup.cache: the parent's store
        self.every = every           # the model's output names, in order (cacheentry.key)
        self.segments = segments     # tritond.shm.views.SegmentCache: the inputs' regions
        self.writer = writer
        self.instance = instance
        self._store: Optional[lru.SharedLru] = None

    @classmethod
    def open(cls, segment: str, spec, segments, writer: OutputWriter,
             instance: str) -> Optional["CacheLookup"]:
        """A lookup for a cached model (``spec``: its ModelSpec) under a sized cache, else
        None (nothing to do)."""
        config_json = spec.config_json
        if not segment or '"response_cache"' not in config_json:
            return None
        try:
            if not json.loads(config_json).get("response_cache", {}).get("enable"):
                return None
        except (ValueError, AttributeError):
            return None
        return cls(segment, tuple(o.name for o in spec.outputs), segments, writer, instance)

    @property
    def store(self) -> lru.SharedLru:
        if self._store is None:      # mapped on the first marked request
            self._store = lru.SharedLru.attach(self.segment)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -------------------------------------------------------------- lookup

    def find(self, requests: list) -> tuple[list, Optional[Visit]]:
        """(the requests to run, the batch's Visit or None when none was looked up)."""
        if not any(r.cache for r in requests):
            return requests, None
        visit, run = Visit(), []
        for req in requests:
            if not req.cache:
                run.append(req)
                continue
            start = time.monotonic_ns()
            key = self._key(req)
            if key is None:
                run.append(req)
                continue
            blob = self.store.get(key)
            ns = time.monotonic_ns() - start
            if blob is None:
                visit.missed[(req.frontend, req.rid)] = (key, ns)
                run.append(req)
            else:
                visit.found.append((req, blob, ns))
        return run, visit

    def _key(self, req: messages.Request) -> Optional[bytes]:
        """The key a frontend would give the same request (None: not looked up)."""
        inputs = []
        try:
            for ref in req.inputs:
                if ref.kind == CUDA_SHM:
                    return None
                inputs.append((ref.name, ref.dtype, ref.shape,
                               self.segments.buffer(ref.region, ref.offset, ref.nbytes,
                                                    ref.gen)))
        except Exception:  # noqa: BLE001 - a bad region: the run reports it as this request's
            return None
        if any(o.dest is not None and o.dest.kind == CUDA_SHM for o in req.outputs):
            return None
        return cacheentry.key(req.model, req.version, inputs,
                              [(o.name, 0) for o in req.outputs], self.every, req.parameters)

    # -------------------------------------------------------------- answers

    def finish(self, visit: Visit, responses: list) -> list:
        """Insert the misses' outputs, then add the hits' Responses to ``responses``."""
        if visit.missed:
            for frontend, resp in responses:
                found = visit.missed.get((frontend, resp.rid))
                if found is not None and resp.error is None:
                    self._insert(resp, *found, visit)
        for req, blob, ns in visit.found:
            responses.append((req.frontend, self._answer(req, blob, ns, visit)))
        return responses

    def _insert(self, resp: Response, key: bytes, lookup_ns: int, visit: Visit) -> None:
        start = time.monotonic_ns()
        outs = []
        for ref in resp.outputs:
            if ref.kind == CUDA_SHM:
                return
            outs.append((ref.name, ref.dtype, ref.shape,
                         self.segments.buffer(ref.region, ref.offset, ref.nbytes, ref.gen)))
        blob = cacheentry.encode(str(resp.model_version), resp.parameters, outs)
        if not self.store.put(key, blob):       # as the frontend logs it (Triton too)
            log.error("Failed to insert key [%s] into response cache: an entry of %d bytes "
                      "does not fit the cache", key.hex(), len(blob))
        visit.misses.append((resp.rid, lookup_ns + time.monotonic_ns() - start))

    def _answer(self, req: messages.Request, blob, ns: int, visit: Visit) -> Response:
        version, parameters, outs = cacheentry.decode(blob)
        dests = {o.name: o.dest for o in req.outputs if o.dest is not None}
        if len(outs) > 1:       # in the order asked (else the model's), as an answer that ran
            names = [o.name for o in req.outputs] if req.outputs else self.every
            order = {name: i for i, name in enumerate(names)}
            outs.sort(key=lambda o: order.get(o[0], len(order)))
        try:
            got = self.writer.write_all(
                (name, Encoded.raw(dtype, data), shape, dests.get(name))
                for name, dtype, shape, data in outs)
        except Exception as exc:  # noqa: BLE001 - e.g. a full arena: this request fails
            got = error_of(exc)
        if type(got) is not list:
            visit.failed.append(req.rid)
            return Response(req.rid, error=got, instance=self.instance,
                            model_version=req.version)
        visit.hits.append((req.rid, ns))
        resp = Response(req.rid, outputs=got, parameters=parameters, instance=self.instance,
                        model_version=int(version) if version.isdigit() else req.version)
        if req.trace:       # Triton's trace of a hit: its QUEUE_START, no COMPUTE_*
            resp.trace = req.trace[1:2]
        return resp
