"""Workers must not keep big input segments mapped after their frontend unlinked them.

Inputs too big for the frontend's input arena travel in one-off segments; the
frontend keeps two spares and unlinks the rest (and the spares once idle). A
worker that cached its mapping of each one would pin every unlinked segment's
pages: /dev/shm space that never comes back, growing with every new name.
"""
import pathlib
import time

import numpy as np
import tritonclient.http as httpclient

from tests.server import Server, server_id_of


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in pathlib.Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _unlinked_mappings(pid: int) -> list[str]:
    found = set()
    for p in _descendants(pid):
        try:
            maps = pathlib.Path(f"/proc/{p}/maps").read_text()
        except OSError:
            continue
        found.update(f"{p}: {line.split()[-2]}" for line in maps.splitlines()
                     if "/dev/shm/tritond-" in line and line.endswith("(deleted)"))
    return sorted(found)


def test_worker_drops_unlinked_input_segments():
    s = Server((), "--model-repository", str(pathlib.Path(__file__).parents[2] / "model_repository"),
               "--input-arena-byte-size=65536", "--model-control-mode=explicit",
               "--load-model=identity_fp32")
    try:
        n = 1 << 18                                   # 1 MiB: always a one-off input segment
        c = httpclient.InferenceServerClient(s.url, concurrency=6)
        x = np.ones(n, np.float32)
        inp = httpclient.InferInput("INPUT0", [n], "FP32")
        inp.set_data_from_numpy(x)
        for _ in range(4):                 # more at once than SPARES: names keep changing
            pending = [c.async_infer("identity_fp32", [inp]) for _ in range(6)]
            for p in pending:
                assert p.get_result().as_numpy("OUTPUT0").shape == (n,)
        c.close()
        spares = f"tritond-{server_id_of(s.proc.pid)}-*-in-0-x*"
        end = time.monotonic() + 10
        while list(pathlib.Path("/dev/shm").glob(spares)) and time.monotonic() < end:
            time.sleep(0.2)                # the idle frontend unlinks its spares
        assert not list(pathlib.Path("/dev/shm").glob(spares))
        end = time.monotonic() + 5
        while _unlinked_mappings(s.proc.pid) and time.monotonic() < end:
            time.sleep(0.2)
        assert _unlinked_mappings(s.proc.pid) == []
    finally:
        s.stop()
