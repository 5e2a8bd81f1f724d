"""The response cache: ``response_cache { enable: true }`` with ``--cache-config local,size=N``.

Where: in the frontend, in front of the InferClient. The frontend holds a
request's input bytes before they are staged and its outputs once they come
back, so a hit is answered from here: no input is copied to shared memory, no
message reaches the scheduler or a worker. (Triton caches in its scheduler; ours
sees only shared-memory references and would have to map and hash every input.)
Each frontend keeps its own cache; tritond runs one frontend.

Key: a BLAKE2b digest of the model, version, each input (name, datatype, shape,
bytes; BYTES tensors in their serialised form), the requested outputs (names,
classification) and the parameters the model sees. Requests with client shared-memory
inputs or outputs, and every request of a ``preserve_ordering`` model, bypass the
cache (counted neither hit nor miss). A miss runs
the request and inserts a copy of its outputs; the least recently used entries
are evicted to stay within ``size`` bytes (an entry bigger than that is not
kept). Statistics follow Triton's UpdateSuccessCacheHit/Miss: a hit counts a
success, its request duration and cache_hit; a miss counts cache_miss with the
lookup + insertion time (also added to the request duration).
"""
from __future__ import annotations

import collections
import hashlib
import time

from tritond.errors import TritonError

from .params import request_fields
from .types import InferRequest, InferResult, OutputTensor


def cache_size(settings: list[str]) -> int:
    """The local cache's byte size from ``--cache-config`` entries (checked by
    tritond.options.cache_setting; 0: no cache)."""
    size = 0
    for entry in settings:
        key, _, value = entry.partition(",")[2].partition("=")
        if key == "size":
            size = int(value, 0)
    return size


class Entry:
    __slots__ = ("version", "parameters", "outputs", "nbytes")

    def __init__(self, result: InferResult) -> None:
        self.version = result.model_version
        self.parameters = dict(result.parameters)
        self.outputs = [(o.name, o.datatype, list(o.shape), bytes(o.data)) for o in result.outputs]
        self.nbytes = sum(len(o[3]) for o in self.outputs) + 64 * (len(self.outputs) + 1)

    def result(self, mv, req: InferRequest) -> InferResult:
        requested = {o.name: o for o in req.outputs} if req.outputs else {}
        outs = [OutputTensor(name, dtype, shape, memoryview(data), requested.get(name))
                for name, dtype, shape, data in self.outputs]
        return InferResult(mv.name, self.version, req.id, dict(self.parameters), outs)


class LruStore:
    """Entries by key, least recently used first, within ``size`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.entries: collections.OrderedDict[bytes, Entry] = collections.OrderedDict()

    def get(self, key: bytes) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: Entry) -> None:
        if entry.nbytes > self.size or key in self.entries:
            return
        while self.used + entry.nbytes > self.size:
            _, old = self.entries.popitem(last=False)
            self.used -= old.nbytes
        self.entries[key] = entry
        self.used += entry.nbytes


def request_key(mv, req: InferRequest) -> bytes | None:
    """The cache key of ``req`` on ``mv``; None when it uses client shared memory."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{mv.name}\0{mv.version}\0".encode())
    for t in sorted(req.inputs, key=lambda t: t.name):
        if t.shm is not None:
            return None
        h.update(f"{t.name}\0{t.datatype}\0{t.shape}\0{len(t.data)}\0".encode())
        h.update(t.data)
    for o in req.outputs or ():
        if o.shm is not None:
            return None
        h.update(f"out\0{o.name}\0{o.classification}\0".encode())
    if req.parameters:      # only what reaches the model (not binary_data_output, priority...)
        try:
            custom = request_fields(req.parameters)[4]
        except TritonError:
            return None         # the uncached path answers the error
        if custom:
            h.update(repr(sorted(custom.items())).encode())
    return h.digest()


class ResponseCache:
    """The frontend's response cache and its per model version statistics."""

    def __init__(self, options) -> None:
        size = cache_size(options.cache_config)
        self.store = LruStore(size) if size else None
        # (model, version) -> [hits, hit ns, misses, miss ns, hit request ns]
        self.counts: dict[tuple[str, str], list[int]] = {}

    def applies(self, mv) -> bool:
        return self.store is not None and mv.response_cache

    async def infer(self, core, mv, req: InferRequest) -> InferResult:
        start = time.monotonic_ns()
        # preserve_ordering: a hit would overtake the requests before it (not cached yet).
        key = None if mv.preserve_ordering else request_key(mv, req)
        if key is None:
            return await core.infer(req, mv, False)
        entry = self.store.get(key)
        looked = time.monotonic_ns()
        counts = self.counts.setdefault((mv.name, mv.version_str), [0, 0, 0, 0, 0])
        if entry is not None:
            result = entry.result(mv, req)
            end = time.monotonic_ns()
            counts[0] += 1
            counts[1] += looked - start
            counts[4] += end - start
            return result
        result = await core.infer(req, mv, False)
        if all(o.data is not None for o in result.outputs):
            insert = time.monotonic_ns()
            self.store.put(key, Entry(result))
            counts[3] += (looked - start) + (time.monotonic_ns() - insert)
        else:
            counts[3] += looked - start
        counts[2] += 1
        return result

    def enabled(self, models) -> set[tuple[str, str]]:
        """(model, version) of every loaded version whose responses are cached."""
        return {(mv.name, mv.version_str) for mv in models.all_versions() if self.applies(mv)}

    def merge(self, stats: dict, enabled: set) -> dict:
        """Add the cache's counts to the scheduler's ``{"model_stats": [...]}`` (in place)."""
        for s in stats.get("model_stats", []) if enabled else ():
            key = (s.get("name"), s.get("version"))
            if key not in enabled:
                continue
            hits, hit_ns, misses, miss_ns, hit_request_ns = self.counts.get(key, (0,) * 5)
            inf = s["inference_stats"]
            inf["cache_hit"] = {"count": hits, "ns": hit_ns}
            inf["cache_miss"] = {"count": misses, "ns": miss_ns}
            inf["success"] = {"count": inf["success"]["count"] + hits,
                              "ns": inf["success"]["ns"] + hit_request_ns + miss_ns}
        return stats
