"""What tritonclient's official examples (src/python/examples) rely on and no other test
pins; each case was found running those examples unchanged against tritond and Triton 2.51."""
from __future__ import annotations

import uuid

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm

from tests.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server([tmp_path_factory.mktemp("repo")], "--allow-client-shm=true")
    yield srv
    srv.stop()


def test_http_shm_status_lists_regions_by_name(server):
    """simple_http_shm_client.py prints the status after registering output_data, then
    input_data: Triton's array is in name order (byte order: capitals first)."""
    http = httpclient.InferenceServerClient(server.url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    tag = uuid.uuid4().hex[:8]
    names = ["output_data", "input_data", "Zeta", "input0_data"]
    handles = [shm.create_shared_memory_region(n, f"/{tag}_{n}", 64) for n in names]
    try:
        for n in names:
            http.register_system_shared_memory(n, f"/{tag}_{n}", 64)
        listed = [r["name"] for r in http.get_system_shared_memory_status()]
        assert listed == ["Zeta", "input0_data", "input_data", "output_data"]
        assert sorted(grpc.get_system_shared_memory_status().regions) == listed
        assert [r["name"] for r in http.get_system_shared_memory_status("input_data")] == \
            ["input_data"]
    finally:
        http.unregister_system_shared_memory()
        for h in handles:
            shm.destroy_shared_memory_region(h)
        http.close()
        grpc.close()
