"""Server-side shm hygiene (issue 3 §5): orphan reaping at start, no arena for shm-only
requests, and /dev/shm usage back at its baseline after a long run."""
from __future__ import annotations

import pathlib
import subprocess

import numpy as np
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm

from tests.integration.test_client_shm import (Regions, repo, shm_input,  # noqa: F401
                                               shm_output, srv)
from tests.server import Server, server_id_of


def _our_usage(server: Server) -> dict[str, int]:
    base = pathlib.Path("/dev/shm")
    return {p.name: p.stat().st_blocks * 512 for p in base.glob(f"tritond-{server_id_of(server.proc.pid)}-*")}


def test_fresh_server_reaps_orphans_and_shm_requests_use_no_arena(repo, tmp_path):
    """Start-up removes a dead owner's segment; shm-only requests never create an arena."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = pathlib.Path(f"/dev/shm/tritond-deadbeef-{dead.pid}-in-0")
    orphan.write_bytes(b"x" * 4096)
    s = Server((repo,), "--allow-client-shm=true")
    r = Regions(s.url)
    try:
        assert not orphan.exists()
        n = 1 << 18
        h = r.create("in", n * 4)
        out = r.create("out", n * 4)
        shm.set_shared_memory_region(h, [np.ones(n, np.float32)])
        for _ in range(3):
            r.client.infer("identity_fp32", [shm_input(httpclient, "INPUT0", n, "in")],
                           outputs=[shm_output(httpclient, "OUTPUT0", "out", n * 4)])
        # Arenas are created on first use: none exists, so neither the frontend's input
        # arena nor the worker's output arena ever allocated for these requests.
        assert _our_usage(s) == {}
        np.testing.assert_array_equal(shm.get_contents_as_numpy(out, np.float32, [n]),
                                      np.ones(n, np.float32))
        r.client.infer("identity_fp32", [shm_input(httpclient, "INPUT0", n, "in")])
        assert len(_our_usage(s)) == 1               # an ordinary output: the worker's arena
    finally:
        orphan.unlink(missing_ok=True)
        r.close()
        s.stop()


def test_long_run_returns_to_baseline(srv):
    """200 requests with 1 MiB tensors leave /dev/shm usage of our segments unchanged."""
    c = httpclient.InferenceServerClient(srv.url)
    x = np.ones(1 << 18, np.float32)
    inp = httpclient.InferInput("INPUT0", [x.size], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)]
    c.infer("identity_fp32", [inp], outputs=out)
    baseline = _our_usage(srv)
    for _ in range(200):
        c.infer("identity_fp32", [inp], outputs=out)
    assert _our_usage(srv) == baseline
