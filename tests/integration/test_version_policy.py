"""Version policies with several versions on a real tritond (Triton's L0_model_config cases)."""
import shutil

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.server import REPO, Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("versions")
    model = repo / "all_versions"
    for version in (1, 2):     # both instances are named all_versions_0: one per version
        shutil.copytree(REPO / "identity_fp32" / "1", model / str(version))
    config = (REPO / "identity_fp32" / "config.pbtxt").read_text()
    (model / "config.pbtxt").write_text(
        config.replace('name: "identity_fp32"', 'name: "all_versions"')
        + "version_policy: { all: {} }\n")
    srv = Server([repo], timeout=60)          # ready means every version loaded
    yield srv
    srv.stop()


def test_all_versions_become_ready_and_serve(server):
    c = httpclient.InferenceServerClient(server.url)
    assert c.is_server_ready()
    rows = {(r["name"], r["version"]): r["state"] for r in c.get_model_repository_index()}
    assert rows == {("all_versions", "1"): "READY", ("all_versions", "2"): "READY"}
    x = np.arange(3, dtype=np.float32)
    for version in ("1", "2"):
        assert c.is_model_ready("all_versions", version)
        inp = httpclient.InferInput("INPUT0", [3], "FP32")
        inp.set_data_from_numpy(x)
        r = c.infer("all_versions", [inp], model_version=version)
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), x)
        assert r.get_response()["model_version"] == version
