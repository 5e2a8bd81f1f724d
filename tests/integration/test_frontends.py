"""``--frontend-processes 2`` on a real tritond with the real tritonclient.

Which frontend serves a connection is the kernel's choice (SO_REUSEPORT), so
the tests open fresh client connections until one lands on each frontend,
telling them apart from outside: the server-side socket of the new connection
shows up among one frontend process's file descriptors (/proc/<pid>/fd and
/proc/net/tcp). No knob, no mock: the same server a user runs.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import time
import urllib.request
import uuid

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.integration.sched_repo import events, wait_for, write_repo
from tests.integration.seq_repo import write_pid_model
from tests.server import REPO, Server, segments_of, socket_inodes


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("frontends")
    repo = write_repo(root, {"cached": {"scheduling": "response_cache { enable: true }"},
                             "slow": {"input_sleep": True, "count": 2}})
    for name in ("identity_fp32", "simple_string"):
        shutil.copytree(REPO / name, repo / name)
    cfg = repo / "simple_string" / "config.pbtxt"
    cfg.write_text(cfg.read_text() + "response_cache { enable: true }\n")
    write_pid_model(repo)
    srv = Server([repo], "--frontend-processes=2", "--cache-config=local,size=1048576",
                 "--allow-client-shm=true", "--model-control-mode=explicit", "--load-model=*")
    yield srv, root
    srv.stop()


# ---------------------------------------------------------------- which frontend


def frontend_pids(srv) -> dict[int, int]:
    """frontend index -> pid, from the process titles ("tritond: frontend 1")."""
    out = {}
    for pid in srv.children():
        try:
            title = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if m := re.fullmatch(r"tritond: frontend (\d+)", title.strip()):
            out[int(m.group(1))] = pid
    return out


def _established(pid: int, port: int) -> set[str]:
    """Inodes of the ESTABLISHED TCP sockets of ``pid`` whose local port is ``port``."""
    mine = socket_inodes(pid)
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in pathlib.Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "01" and f[9] in mine:
                found.add(f[9])
    return found


def clients_on_each_frontend(srv, port: int, make, call) -> dict[int, object]:
    """A client whose connection frontend 0 serves and one that frontend 1 serves."""
    pids = frontend_pids(srv)
    assert sorted(pids) == [0, 1], pids
    found: dict[int, object] = {}
    for _ in range(60):
        before = {i: _established(p, port) for i, p in pids.items()}
        client = make()
        call(client)
        new = [i for i, p in pids.items() if _established(p, port) - before[i]]
        if len(new) == 1 and new[0] not in found:
            found[new[0]] = client
            if len(found) == 2:
                return found
        else:
            client.close()
    raise AssertionError(f"connections never reached both frontends: {sorted(found)}")


def http_pair(srv):
    return clients_on_each_frontend(srv, srv.http_port,
                                    lambda: httpclient.InferenceServerClient(srv.url),
                                    lambda c: c.is_server_live())


def grpc_pair(srv):
    return clients_on_each_frontend(srv, srv.grpc_port,
                                    lambda: grpcclient.InferenceServerClient(
                                        srv.grpc_url, channel_args=[
                                            # a connection of its own, not the process's
                                            # shared subchannel
                                            ("grpc.use_local_subchannel_pool", 1)]),
                                    lambda c: c.is_server_live())


PAIRS = {"http": (http_pair, httpclient), "grpc": (grpc_pair, grpcclient)}


def fp32(mod, values, name="INPUT0"):
    x = np.asarray(values, np.float32)
    inp = mod.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def close(pair):
    for c in pair.values():
        c.close()


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_both_frontends_serve_inference(env, protocol):
    srv, _ = env
    make_pair, mod = PAIRS[protocol]
    pair = make_pair(srv)
    try:
        for n, c in pair.items():
            out = c.infer("identity_fp32", [fp32(mod, [n, 2.5])]).as_numpy("OUTPUT0")
            assert out.tolist() == [n, 2.5]
    finally:
        close(pair)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_system_shm_registered_through_one_frontend_is_used_through_the_other(env, protocol):
    srv, _ = env
    make_pair, mod = PAIRS[protocol]
    pair = make_pair(srv)
    key, name = f"/fe_shm_{uuid.uuid4().hex[:8]}", f"region_{protocol}"
    handle = shm.create_shared_memory_region(name, key, 64)
    try:
        shm.set_shared_memory_region(handle, [np.arange(4, dtype=np.float32)])
        pair[0].register_system_shared_memory(name, key, 64)
        for c in pair.values():                      # status: the same set everywhere
            status = c.get_system_shared_memory_status()
            names = [r["name"] for r in status] if protocol == "http" else list(status.regions)
            assert names == [name]
        inp = mod.InferInput("INPUT0", [4], "FP32")
        inp.set_shared_memory(name, 16)
        out = mod.InferRequestedOutput("OUTPUT0")
        out.set_shared_memory(name, 16, offset=32)
        pair[1].infer("identity_fp32", [inp], outputs=[out])
        assert shm.get_contents_as_numpy(handle, np.float32, [4], offset=32).tolist() == \
            [0, 1, 2, 3]
        pair[1].unregister_system_shared_memory(name)       # unregistered everywhere
        for c in pair.values():
            status = c.get_system_shared_memory_status()
            assert len(status if protocol == "http" else status.regions) == 0
        with pytest.raises(InferenceServerException, match="Unable to find shared memory"):
            pair[0].infer("identity_fp32", [inp])
        pair[1].register_system_shared_memory(name, key, 64)
        with pytest.raises(InferenceServerException, match="already in manager"):
            pair[0].register_system_shared_memory(name, key, 64)
        pair[0].unregister_system_shared_memory()
    finally:
        close(pair)
        shm.destroy_shared_memory_region(handle)


def test_a_region_unregistered_while_the_other_frontend_uses_it_stays_listed_everywhere(env):
    """Triton's awaiting unregistration, server-wide: a region one frontend's request
    still uses is listed, and usable, through every connection until that request ends."""
    import queue

    srv, root = env
    pair = grpc_pair(srv)
    key, name = f"/fe_await_{uuid.uuid4().hex[:8]}", "awaited"
    key2, handle2 = f"/fe_await2_{uuid.uuid4().hex[:8]}", None
    handle = shm.create_shared_memory_region(name, key, 32)
    done: queue.Queue = queue.Queue()
    try:
        shm.set_shared_memory_region(handle, [np.array([[3000, 1, 2, 3], [0, 5, 6, 7]],
                                                       np.float32)])
        pair[0].register_system_shared_memory(name, key, 32)

        def rows(offset):
            inp = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
            inp.set_shared_memory(name, 16, offset=offset)
            return [inp]
        pair[1].async_infer("slow", rows(0),
                            callback=lambda result, error: done.put((result, error)))
        wait_for(lambda: [e for e in events(root, "slow") if e["event"] == "exec"],
                 what="the slow model to run")       # it sleeps its first input: 3 s
        pair[0].unregister_system_shared_memory(name)
        for c in pair.values():
            assert list(c.get_system_shared_memory_status().regions) == [name]
            assert c.get_system_shared_memory_status(name).regions[name].byte_size == 32
        # usable through the frontend that has no request using it
        out = pair[0].infer("slow", rows(16)).as_numpy("OUTPUT0")
        assert out.tolist() == [[0, 5, 6, 7]]
        # The name is free at once: a new region registered under it shadows the awaiting
        # one on every frontend, while the running request keeps its own mapping.
        handle2 = shm.create_shared_memory_region(name + "2", key2, 32)
        shm.set_shared_memory_region(handle2, [np.full((2, 4), 8, np.float32)])
        pair[1].register_system_shared_memory(name, key2, 32)
        for c in pair.values():
            assert c.get_system_shared_memory_status(name).regions[name].key == key2
        assert pair[0].infer("slow", rows(16)).as_numpy("OUTPUT0").tolist() == [[8] * 4]
        result, error = done.get(timeout=60)
        assert error is None and result.as_numpy("OUTPUT0").tolist() == [[3000, 1, 2, 3]]

        def keys():
            return [[r.key for r in c.get_system_shared_memory_status().regions.values()]
                    for c in pair.values()]
        wait_for(lambda: keys() == [[key2], [key2]], what="the awaiting region to leave")
        pair[1].unregister_system_shared_memory(name)
        wait_for(lambda: keys() == [[], []], what="the region to leave")
        with pytest.raises(InferenceServerException, match="Unable to find shared memory"):
            pair[1].infer("slow", rows(16))
    finally:
        close(pair)
        shm.destroy_shared_memory_region(handle)
        if handle2 is not None:
            shm.destroy_shared_memory_region(handle2)


def test_settings_updated_through_one_frontend_read_the_same_through_the_other(env):
    srv, _ = env
    pair = http_pair(srv)
    try:
        pair[0].update_log_settings({"log_verbose_level": 1})
        assert pair[1].get_log_settings()["log_verbose_level"] == 1
        pair[1].update_trace_settings(settings={"trace_rate": "7"})
        assert pair[0].get_trace_settings()["trace_rate"] == "7"
    finally:
        pair[0].update_log_settings({"log_verbose_level": 0})
        pair[0].update_trace_settings(settings={"trace_rate": "1000"})
        close(pair)


def test_model_control_through_one_frontend_is_seen_through_the_other_at_once(env):
    srv, _ = env
    pair = http_pair(srv)
    try:
        pair[0].unload_model("identity_fp32")
        assert not pair[1].is_model_ready("identity_fp32")
        index = {m["name"]: m.get("state") for m in pair[1].get_model_repository_index()}
        assert index["identity_fp32"] == "UNAVAILABLE"
        with pytest.raises(InferenceServerException, match="identity_fp32"):
            pair[1].infer("identity_fp32", [fp32(httpclient, [1.0])])
        pair[1].load_model("identity_fp32")
        assert pair[0].is_model_ready("identity_fp32")
        assert pair[0].infer("identity_fp32", [fp32(httpclient, [4.0])]).as_numpy(
            "OUTPUT0").tolist() == [4.0]
    finally:
        pair[0].load_model("identity_fp32")
        close(pair)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_sequence_started_on_one_frontend_goes_on_through_the_other(env, protocol):
    srv, _ = env
    make_pair, mod = PAIRS[protocol]
    pair = make_pair(srv)

    def step(c, **flags):
        inp = mod.InferInput("INPUT", [1, 1], "INT32")
        inp.set_data_from_numpy(np.zeros((1, 1), np.int32))
        cid = 41 if protocol == "http" else 42
        return int(c.infer("seq_pid", [inp], sequence_id=cid, **flags).as_numpy("OUTPUT")[0][0])
    try:
        pid = step(pair[0], sequence_start=True)
        assert step(pair[1]) == pid            # the same slot, whichever frontend
        assert step(pair[0]) == pid
        assert step(pair[1], sequence_end=True) == pid
        with pytest.raises(InferenceServerException, match="START"):
            step(pair[0])                      # ended through the other frontend
    finally:
        close(pair)


def test_grpc_streams_on_both_frontends(env):
    import queue

    srv, _ = env
    pair = grpc_pair(srv)
    try:
        for n, c in pair.items():
            got: queue.Queue = queue.Queue()
            c.start_stream(callback=lambda result, error: got.put((result, error)))
            for i in range(3):
                c.async_stream_infer("identity_fp32", [fp32(grpcclient, [n, i])],
                                     request_id=str(i))
            answers = [got.get(timeout=30) for _ in range(3)]
            c.stop_stream()
            assert sorted(r.as_numpy("OUTPUT0").tolist()[1] for r, e in answers
                          if e is None) == [0, 1, 2]
    finally:
        close(pair)


def _execs(root) -> int:
    return len([e for e in events(root, "cached") if e["event"] == "exec"])


def _metrics(srv) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics") as r:
        return r.read().decode()


def _sample(text: str, family: str, model: str) -> int:
    m = re.search(rf'^{family}{{model="{model}",version="1"}} (\d+)$', text, re.M)
    assert m, f"{family} for {model} missing"
    return int(m.group(1))


def test_cached_on_one_frontend_is_a_hit_on_the_other_and_counts_sum(env):
    srv, root = env
    pair = http_pair(srv)
    try:
        runs = _execs(root)
        first = pair[0].infer("cached", [fp32(httpclient, [[7.0, 8.0]])])
        assert _execs(root) == runs + 1
        second = pair[1].infer("cached", [fp32(httpclient, [[7.0, 8.0]])])    # a hit
        third = pair[1].infer("cached", [fp32(httpclient, [[7.0, 8.0]])])
        assert _execs(root) == runs + 1
        for r in (second, third):
            np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), first.as_numpy("OUTPUT0"))
            np.testing.assert_array_equal(r.as_numpy("SEQ"), first.as_numpy("SEQ"))
        # Statistics asked on either frontend sum both frontends' hits and misses.
        # (The executed request's own success reaches the scheduler's statistics with the
        # worker's next ResponseStats, up to 50 ms later: wait for it.)
        def stats_of(c):
            return c.get_inference_statistics("cached")["model_stats"][0]["inference_stats"]
        for c in pair.values():
            inf = wait_for(lambda: (s := stats_of(c))["success"]["count"] == 3 and s,
                           what="the executed request in the statistics")
            assert (inf["cache_hit"]["count"], inf["cache_miss"]["count"]) == (2, 1)
        text = _metrics(srv)
        assert _sample(text, "nv_cache_num_hits_per_model", "cached") == 2
        assert _sample(text, "nv_cache_num_misses_per_model", "cached") == 1
        assert _sample(text, "nv_inference_request_success", "cached") == 3
    finally:
        close(pair)


def test_both_frontends_fill_the_cache_at_once_and_every_answer_stays_its_own(env):
    """Concurrent writers: four clients on two frontends insert distinct answers at the
    same time; each later request for the same input is a hit with exactly that answer."""
    import threading

    srv, root = env
    pair = grpc_pair(srv)          # gRPC clients may be shared by threads
    clients = {**pair, **{n + 2: grpcclient.InferenceServerClient(srv.grpc_url)
                          for n in range(2)}}
    first: dict[float, np.ndarray] = {}
    lock = threading.Lock()

    def load(n, c):
        for i in range(15):
            v = 1000.0 + n * 100 + i
            out = c.infer("cached", [fp32(grpcclient, [[v, -v]])]).as_numpy("OUTPUT0")
            with lock:
                first[v] = out
    try:
        before = _cache_counts(pair[0])
        threads = [threading.Thread(target=load, args=(n, c)) for n, c in clients.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        runs = _execs(root)
        for v, out in first.items():
            assert out.tolist() == [[v, -v]]
            again = pair[int(v) % 2].infer("cached", [fp32(grpcclient, [[v, -v]])])
            assert again.as_numpy("OUTPUT0").tolist() == [[v, -v]]
        assert _execs(root) == runs                   # 60 hits, no execution
        after = _cache_counts(pair[1])
        assert (after[0] - before[0], after[1] - before[1]) == (60, 60)
    finally:
        close(clients)


def _cache_counts(client) -> tuple[int, int]:
    inf = client.get_inference_statistics("cached", as_json=True)["model_stats"][0][
        "inference_stats"]
    return int(inf["cache_hit"].get("count", 0)), int(inf["cache_miss"].get("count", 0))


def test_bytes_answers_cached_through_one_frontend_come_back_byte_for_byte(env):
    srv, _ = env
    pair = grpc_pair(srv)
    data = np.array([["é".encode(), "日本".encode(), b"a\x00b"] + [b"x"] * 13], dtype=np.object_)
    try:
        inp = grpcclient.InferInput("INPUT0", [1, 16], "BYTES")
        inp.set_data_from_numpy(data)
        first = pair[0].infer("simple_string", [inp]).as_numpy("OUTPUT0")
        again = pair[1].infer("simple_string", [inp]).as_numpy("OUTPUT0")
        assert first.tolist() == again.tolist() and first.tolist()[0][:3] == data.tolist()[0][:3]
        stats = pair[1].get_inference_statistics("simple_string", as_json=True)
        assert int(stats["model_stats"][0]["inference_stats"]["cache_hit"]["count"]) == 1
    finally:
        close(pair)


def test_a_killed_frontend_stops_the_server_cleanly(tmp_path):
    srv = Server([REPO], "--frontend-processes=2")
    try:
        pids = frontend_pids(srv)
        segments_of(srv.proc.pid)               # learn the server id while it runs
        os.kill(pids[1], signal.SIGKILL)
        assert srv.proc.wait(60) == 1
        out = srv.output()
        assert "frontend-1 (pid %d) killed by signal SIGKILL unexpectedly" % pids[1] in out
        assert "tritond stopped (exit code 1)" in out
        assert segments_of(srv.proc.pid) == []
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{p}") for p in pids.values()) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids.values())
    finally:
        srv.stop()


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sequences_go_on_through_either_frontend_while_draining(tmp_path):
    """SIGTERM: a sequence another frontend saw start is served on this one, and a sequence
    ended through one frontend is not waited for by the other (idle timeout 120 s)."""
    from tests.integration.seq_repo import IO, PID_PY, _model

    _model(tmp_path, "seq_long", f'''backend: "python"
max_batch_size: 1
sequence_batching {{ max_sequence_idle_microseconds: 120000000 }}
instance_group [ {{ kind: KIND_CPU count: 2 }} ]
{IO}''', PID_PY)
    srv = Server([tmp_path], "--frontend-processes=2", "--exit-timeout-secs=120")

    def step(client, cid, start=False, end=False):
        inp = httpclient.InferInput("INPUT", [1, 1], "INT32")
        inp.set_data_from_numpy(np.zeros((1, 1), np.int32))
        return int(client.infer("seq_long", [inp], sequence_id=cid, sequence_start=start,
                                sequence_end=end).as_numpy("OUTPUT")[0][0])
    try:
        pair = http_pair(srv)
        pids = {step(pair[0], 5, start=True), step(pair[1], 6, start=True)}
        srv.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "received SIGTERM" in srv.output(), what="the SIGTERM")
        time.sleep(0.3)                       # the frontends heard of it
        for c in pair.values():
            with pytest.raises(InferenceServerException, match="shutting down"):
                step(c, 7, start=True)        # no new sequence
            assert not c.is_server_live() and not c.is_server_ready()   # Server exiting
        assert {step(pair[1], 5), step(pair[0], 6)} == pids      # crossed over
        assert {step(pair[1], 5, end=True), step(pair[0], 6, end=True)} == pids
        assert srv.proc.wait(60) == 0         # nobody waits 120 s for an ended sequence
    finally:
        close(pair) if "pair" in locals() else None
        srv.stop()
