"""The response cache's parts (frontend/cache.py): settings, keys, LRU, statistics."""
import pytest

from tritond import options
from tritond.frontend import cache
from tritond.frontend.types import InferRequest, InferResult, InputTensor, OutputTensor, \
    RequestedOutput, ShmRef


class MV:
    name, key, version, version_str, response_cache, preserve_ordering = "m", "m", 1, "1", True, False
    outputs = {"OUT": None, "S": None}


def request(data=b"\1\0\0\0", **kw) -> InferRequest:
    return InferRequest("m", inputs=[InputTensor("IN", "INT32", [1], data)], **kw)


def result(data: bytes) -> InferResult:
    return InferResult("m", "1", "", {"p": 1},
                       [OutputTensor("OUT", "INT32", [1], memoryview(data), None)])


def test_cache_config_syntax():
    assert options.cache_setting("local,size=1024") == "local,size=1024"
    with pytest.raises(options.OptionError, match="format"):
        options.cache_setting("local")
    with pytest.raises(options.OptionError, match="'redis' is not supported"):
        options.cache_setting("redis,host=x")
    assert cache.cache_size(["local,size=1024"]) == 1024
    assert cache.cache_size([]) == 0


def test_keys_differ_by_data_outputs_and_parameters_and_read_client_shm_inputs():
    base = cache.request_key(MV, request())
    assert base == cache.request_key(MV, request())
    assert base != cache.request_key(MV, request(b"\2\0\0\0"))
    assert base != cache.request_key(MV, request(outputs=[RequestedOutput("OUT", classification=1)]))
    assert base != cache.request_key(MV, request(parameters={"x": 1}))
    assert base == cache.request_key(MV, request(parameters={"binary_data_output": True,
                                                             "priority": 1}))
    shm = InferRequest("m", inputs=[InputTensor("IN", "INT32", [1], shm=ShmRef("r", 0, 4))])
    assert cache.request_key(MV, shm) is None               # nothing to read it with
    # An input in client shm is keyed by its bytes: the same key as the same bytes inline.
    assert cache.request_key(MV, shm, read=lambda ref: b"\1\0\0\0") == base
    # Where an output goes does not change the answer.
    assert cache.request_key(MV, request(outputs=[RequestedOutput("OUT", shm=ShmRef("r", 0, 4))])) \
        == cache.request_key(MV, request(outputs=[RequestedOutput("OUT")]))


class Shm:
    """Plays ClientShm's read/write of client regions (a bytearray per region)."""

    def __init__(self):
        self.regions = {"r": bytearray(16)}

    def read_output(self, ref):
        return bytes(self.regions[ref.region][ref.offset:ref.offset + ref.byte_size])

    def write_output(self, ref, data):
        self.regions[ref.region][ref.offset:ref.offset + len(data)] = data


def test_an_entry_round_trips_every_output_with_the_requests_own_options():
    strings = b"\3\0\0\0abc\0\0\0\0"           # BYTES ["abc", ""], serialised
    res = InferResult("m", "1", "", {"p": 1},
                      [OutputTensor("OUT", "INT32", [1], memoryview(b"\7\0\0\0"), None),
                       OutputTensor("S", "BYTES", [2], memoryview(strings), None)])
    blob = cache.encode(res, cache.output_bytes(res, Shm()))
    want = RequestedOutput("OUT", binary=True)
    got = cache.decode(blob, MV, request(id="r2", outputs=[want, RequestedOutput("S")]), Shm())
    assert (got.id, got.model_version, got.parameters) == ("r2", "1", {"p": 1})
    assert bytes(got.outputs[0].data) == b"\7\0\0\0" and got.outputs[0].requested is want
    assert got.outputs[1].as_numpy().tolist() == [b"abc", b""]


def test_client_shm_outputs_are_read_back_on_a_miss_and_written_on_a_hit():
    shm = Shm()
    ref = ShmRef("r", 4, 12)
    shm.regions["r"][4:12] = b"abc\0def\0"
    bytes_ref = ShmRef("r", 0, 16)
    res = InferResult("m", "1", "", {}, [
        OutputTensor("OUT", "INT32", [2], None, RequestedOutput("OUT", shm=ref))])
    blob = cache.encode(res, cache.output_bytes(res, shm))
    other = Shm()
    got = cache.decode(blob, MV, request(outputs=[RequestedOutput("OUT", shm=ref)]), other)
    assert got.outputs[0].data is None and bytes(other.regions["r"][4:12]) == b"abc\0def\0"
    # A region too small for the cached answer: no hit (the uncached path says why).
    assert cache.decode(blob, MV, request(outputs=[RequestedOutput("OUT", shm=ShmRef("r", 0, 4))]),
                        other) is None
    # BYTES in client shm: as many serialised elements as the shape says.
    shm.regions["r"][0:16] = b"\2\0\0\0hi\1\0\0\0!zzzzz"
    res = InferResult("m", "1", "", {}, [
        OutputTensor("S", "BYTES", [2], None, RequestedOutput("S", shm=bytes_ref))])
    assert cache.output_bytes(res, shm) == [b"\2\0\0\0hi\1\0\0\0!"]


def test_statistics_sum_every_frontends_rows_as_triton_counts_hits_and_misses():
    rc = cache.ResponseCache(None)
    rc.counts[("m", "1")] = [2, 2000, 1, 500, 7000]
    other = [["m", "1", 1, 1000, 0, 0, 3000]]         # another frontend's FrontendStatsAnswer
    d = lambda c, ns: {"count": c, "ns": ns}
    stats = {"model_stats": [{"name": "m", "version": "1", "inference_stats": {
        "success": d(1, 10_000), "queue": d(1, 100), "cache_hit": d(0, 0),
        "cache_miss": d(0, 0)}}]}
    rc.merge(stats, {("m", "1")}, rc.rows() + other)
    inf = stats["model_stats"][0]["inference_stats"]
    assert inf["cache_hit"] == d(3, 3000) and inf["cache_miss"] == d(1, 500)
    assert inf["success"] == d(4, 10_000 + 10_000 + 500)
    assert inf["queue"] == d(4, 100)        # a hit counts a queue duration (Triton)


def test_statistics_add_to_the_workers_lookups_of_steps_and_bls_calls():
    # The scheduler's own cache counts are the workers' (workers/cachelookup.py).
    rc = cache.ResponseCache(None)
    rc.counts[("m", "1")] = [1, 100, 1, 200, 300]
    d = lambda c, ns: {"count": c, "ns": ns}
    stats = {"model_stats": [{"name": "m", "version": "1", "inference_stats": {
        "success": d(3, 9000), "queue": d(3, 30), "cache_hit": d(1, 50),
        "cache_miss": d(1, 70)}}]}
    rc.merge(stats, {("m", "1")})
    inf = stats["model_stats"][0]["inference_stats"]
    assert inf["cache_hit"] == d(2, 150) and inf["cache_miss"] == d(2, 270)
    assert inf["success"] == d(4, 9000 + 300 + 200)


def test_open_store_maps_the_parents_segment_or_makes_its_own():
    import uuid

    from tritond.options import Options
    from tritond.shm import lru
    from tritond.shm.region import segment_name

    sid = "t" + uuid.uuid4().hex[:8]
    opts = Options(cache_config=["local,size=4096"])
    assert cache.open_store(Options(), sid, "in-0", "") == (None, None)
    parent = lru.create(segment_name(sid, "cache"), 4096)      # what the parent makes
    own_store, own = cache.open_store(opts, sid, "in-0", "")   # no parent: a store of its own
    a, none = cache.open_store(opts, sid, "in-0", parent.name)
    b, _ = cache.open_store(opts, sid, "in-1", parent.name)
    try:
        assert none is None and own is not None and own.name != parent.name
        a.put(b"k" * 16, b"answer")
        assert bytes(b.get(b"k" * 16)) == b"answer"           # two frontends, one store
        assert own_store.get(b"k" * 16) is None
    finally:
        for store in (a, b, own_store):
            store.close()
        for seg in (parent, own):
            seg.unlink()
            seg.close()


def test_asking_for_every_output_plainly_keys_as_asking_for_none():
    # An ensemble step maps the outputs it uses; one that maps them all shares the entry
    # of a client request naming none (tritond/cacheentry.py), in any order.
    base = cache.request_key(MV, request())
    both = [RequestedOutput("S"), RequestedOutput("OUT")]
    assert cache.request_key(MV, request(outputs=both)) == base
    assert cache.request_key(MV, request(outputs=[RequestedOutput("OUT")])) != base
    assert cache.request_key(MV, request(outputs=[RequestedOutput("S"), RequestedOutput(
        "OUT", classification=1)])) != base


def test_a_hit_answers_in_the_order_the_request_asks():
    res = InferResult("m", "1", "", {}, [
        OutputTensor("OUT", "INT32", [1], memoryview(b"\7\0\0\0"), None),
        OutputTensor("S", "BYTES", [1], memoryview(b"\1\0\0\0a"), None)])
    blob = cache.encode(res, cache.output_bytes(res, Shm()))
    got = cache.decode(blob, MV, request(outputs=[RequestedOutput("S"), RequestedOutput("OUT")]),
                       Shm())
    assert [o.name for o in got.outputs] == ["S", "OUT"]
