"""Process lifecycle: clean shutdown, bad models, bad flags."""
import subprocess
import sys
import time

import numpy as np
import tritonclient.http as httpclient

from tests.server import REPO, Server, segments_of


def test_shutdown_leaves_no_process_and_no_segment():
    srv = Server()
    c = httpclient.InferenceServerClient(srv.url)
    a = np.ones((1, 16), np.int32)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    for i in inputs:
        i.set_data_from_numpy(a)
    c.infer("simple", inputs)
    c.close()
    children = srv.children()
    assert len(children) >= 3  # scheduler, frontend, workers
    assert segments_of(srv.proc.pid)  # the data path really used shm
    assert srv.stop() == 0
    time.sleep(0.2)
    alive = [p for p in children if _alive(p)]
    assert alive == []
    assert segments_of(srv.proc.pid) == []


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_bad_model_is_unavailable_and_others_serve(tmp_path):
    import shutil
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "simple", repo / "simple")
    bad = repo / "broken"
    (bad / "1").mkdir(parents=True)
    (bad / "config.pbtxt").write_text('backend: "onnxruntime"\nmax_batch_size: -3 bogus_field: 1\n')
    missing = repo / "nofile"
    (missing / "1").mkdir(parents=True)
    (missing / "config.pbtxt").write_text('backend: "onnxruntime"\n')
    srv = Server([repo], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        c = httpclient.InferenceServerClient(srv.url)
        _wait_for(lambda: c.is_model_ready("simple"))
        assert not c.is_server_ready()  # strict readiness: 'nofile' failed to load
        index = {m["name"]: m for m in c.get_model_repository_index()}
        # a config that does not parse fails polling, as in Triton: no state, a name-only row
        assert index["broken"] == {"name": "broken"}
        assert index["nofile"]["state"] == "UNAVAILABLE" and "model.onnx" in index["nofile"]["reason"]
        assert not c.is_model_ready("broken")
        c.close()
    finally:
        srv.stop()
    assert "bogus_field" in srv.output()


def _wait_for(pred, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError


def test_exit_on_error(tmp_path):
    repo = tmp_path / "repo"
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text("this is not pbtxt")
    proc = subprocess.run([sys.executable, "-m", "tritond.cli", "--model-repository", str(repo),
                           "--exit-on-error=true", "--http-port=0", "--grpc-port=0", "--metrics-port=0",
                           "--http-address=127.0.0.1", "--grpc-address=127.0.0.1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "broken" in proc.stderr


def test_bad_flags_exit_2():
    for args in (["--bogus"], ["--model-repository", str(REPO), "--http-port", "x"],
                 ["--model-repository", str(REPO), "--allow-http=maybe"], []):
        proc = subprocess.run([sys.executable, "-m", "tritond.cli", *args],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, args
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tritond: error:")


def test_help_lists_every_option():
    from tritond import options as config
    out = subprocess.run([sys.executable, "-m", "tritond.cli", "--help"],
                         capture_output=True, text=True, timeout=30).stdout
    for opt in config.OPTIONS:
        assert opt.flag in out and opt.env in out


def test_a_model_in_two_repositories_is_indexed_as_triton_does(tmp_path):
    """L0_lifecycle test_model_repository_index: the duplicate's row has no version, state
    UNAVAILABLE and Triton's reason, over HTTP and gRPC."""
    import shutil

    import tritonclient.grpc as grpcclient
    for repo in ("a", "b"):
        shutil.copytree(REPO / "simple", tmp_path / repo / "simple")
    shutil.copytree(REPO / "identity_fp32", tmp_path / "a" / "identity_fp32")
    srv = Server([tmp_path / "a", tmp_path / "b"], wait_ready=False)
    try:
        srv.wait("/v2/health/live")
        c = httpclient.InferenceServerClient(srv.url)
        _wait_for(lambda: c.is_model_ready("identity_fp32"))
        row = {"name": "simple", "state": "UNAVAILABLE",
               "reason": "model appears in two or more repositories"}
        assert [r for r in c.get_model_repository_index() if r["name"] == "simple"] == [row]
        g = grpcclient.InferenceServerClient(srv.grpc_url)
        (got,) = [m for m in g.get_model_repository_index().models if m.name == "simple"]
        assert (got.version, got.state, got.reason) == ("", row["state"], row["reason"])
        c.close()
        g.close()
    finally:
        srv.stop()
