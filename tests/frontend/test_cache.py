"""The response cache's parts (frontend/cache.py): settings, keys, LRU, statistics."""
import pytest

from tritond import options
from tritond.frontend import cache
from tritond.frontend.types import InferRequest, InferResult, InputTensor, OutputTensor, \
    RequestedOutput, ShmRef


class MV:
    name, version, version_str, response_cache, preserve_ordering = "m", 1, "1", True, False


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


def test_keys_differ_by_data_outputs_and_parameters_and_skip_client_shm():
    base = cache.request_key(MV, request())
    assert base == cache.request_key(MV, request())
    assert base != cache.request_key(MV, request(b"\2\0\0\0"))
    assert base != cache.request_key(MV, request(outputs=[RequestedOutput("OUT", classification=1)]))
    assert base != cache.request_key(MV, request(parameters={"x": 1}))
    assert base == cache.request_key(MV, request(parameters={"binary_data_output": True,
                                                             "priority": 1}))
    shm = InferRequest("m", inputs=[InputTensor("IN", "INT32", [1], shm=ShmRef("r", 0, 4))])
    assert cache.request_key(MV, shm) is None
    assert cache.request_key(MV, request(outputs=[RequestedOutput("OUT", shm=ShmRef("r", 0, 4))])) is None


def test_lru_evicts_the_least_recently_used_within_the_size():
    entry = cache.Entry(result(b"x" * 100))
    store = cache.LruStore(entry.nbytes * 2)
    store.put(b"a", entry)
    store.put(b"b", cache.Entry(result(b"y" * 100)))
    assert store.get(b"a") is entry                  # a is now the most recent
    store.put(b"c", cache.Entry(result(b"z" * 100)))
    assert store.get(b"b") is None and store.get(b"a") is entry and store.get(b"c") is not None
    assert store.used <= store.size
    store.put(b"huge", cache.Entry(result(b"h" * 10_000)))     # bigger than the cache: not kept
    assert store.get(b"huge") is None


def test_a_hit_answers_a_copy_with_the_requests_own_output_options():
    entry = cache.Entry(result(b"\7\0\0\0"))
    want = RequestedOutput("OUT", binary=True)
    got = entry.result(MV, request(id="r2", outputs=[want]))
    assert (got.id, got.model_version, got.parameters) == ("r2", "1", {"p": 1})
    assert bytes(got.outputs[0].data) == b"\7\0\0\0" and got.outputs[0].requested is want


def test_statistics_merge_as_triton_counts_hits_and_misses():
    class Opts:
        cache_config = ["local,size=1000"]
    rc = cache.ResponseCache(Opts)
    rc.counts[("m", "1")] = [2, 2000, 1, 500, 7000]
    d = lambda c, ns: {"count": c, "ns": ns}
    stats = {"model_stats": [{"name": "m", "version": "1", "inference_stats": {
        "success": d(1, 10_000), "cache_hit": d(0, 0), "cache_miss": d(0, 0)}}]}
    rc.merge(stats, {("m", "1")})
    inf = stats["model_stats"][0]["inference_stats"]
    assert inf["cache_hit"] == d(2, 2000) and inf["cache_miss"] == d(1, 500)
    assert inf["success"] == d(3, 10_000 + 7000 + 500)
