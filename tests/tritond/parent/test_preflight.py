"""Checks before anything starts: repository paths and listening ports."""
import socket

from tritond.options import Options
from tritond.parent import preflight


def test_repository_paths(tmp_path):
    (tmp_path / "file").write_text("x")
    missing, afile = str(tmp_path / "missing"), str(tmp_path / "file")
    assert preflight.repository_problems([str(tmp_path), missing, afile]) == [
        f"model repository '{missing}' does not exist",
        f"model repository '{afile}' is not a directory"]


def listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_busy_ports_are_named_with_their_flag():
    with listening() as http, listening() as grpc:
        hp, gp = http.getsockname()[1], grpc.getsockname()[1]
        opts = Options(model_repository=["/"], http_address="127.0.0.1", http_port=hp,
                       grpc_address="127.0.0.1", grpc_port=gp, metrics_port=0)
        assert preflight.problems(opts) == [
            f"cannot serve HTTP on 127.0.0.1:{hp} (--http-port): the address is already in use",
            f"cannot serve gRPC on 127.0.0.1:{gp} (--grpc-port): the address is already in use"]
        # Disabled endpoints, a shared gRPC port and port 0 are not checked.
        assert preflight.port_problems(Options(allow_http=False, grpc_address="127.0.0.1",
                                               grpc_port=gp, reuse_grpc_port=True,
                                               allow_metrics=False)) == []
        assert preflight.port_problems(Options(http_address="127.0.0.1", http_port=0,
                                               grpc_address="127.0.0.1", grpc_port=0,
                                               metrics_port=0)) == []


def test_an_address_this_host_does_not_have():
    assert preflight.bind_problem("192.0.2.1", 8000) == "Cannot assign requested address"


def test_http_and_grpc_on_one_port():
    opts = Options(http_port=9000, grpc_address="127.0.0.1", grpc_port=9000)
    assert preflight.port_problems(opts) == [
        "HTTP and gRPC cannot share port 9000 (--http-port, --grpc-port)"]


def test_a_port_another_server_shares_with_so_reuseport_is_still_busy():
    """Our frontends share their ports (--frontend-processes); the check binds without
    SO_REUSEPORT so that another program's shared listener is not joined silently."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        opts = Options(model_repository=["/"], http_address="127.0.0.1", http_port=port,
                       grpc_address="127.0.0.1", grpc_port=0, metrics_port=0,
                       frontend_processes=2)
        assert preflight.problems(opts) == [
            f"cannot serve HTTP on 127.0.0.1:{port} (--http-port): the address is already in use"]


def test_a_busy_metrics_port_is_refused_only_when_metrics_are_served():
    """tritonserver's StartEndpoints stops on "failed to start Metrics service" as on HTTP's."""
    with listening() as metrics:
        mp = metrics.getsockname()[1]
        opts = dict(http_address="127.0.0.1", http_port=0, grpc_address="127.0.0.1",
                    grpc_port=0, metrics_address="127.0.0.1", metrics_port=mp)
        assert preflight.port_problems(Options(**opts)) == [
            f"cannot serve metrics on 127.0.0.1:{mp} (--metrics-port): "
            "the address is already in use"]
        assert preflight.port_problems(Options(**opts, allow_metrics=False)) == []
        assert preflight.port_problems(Options(**{**opts, "metrics_port": 0})) == []


def test_reuse_http_port_skips_the_http_bind_check():
    """Another server holding the port with SO_REUSEPORT is the point of --reuse-http-port:
    the frontend's own bind (with SO_REUSEPORT) decides."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        opts = Options(http_address="127.0.0.1", http_port=port, grpc_address="127.0.0.1",
                       grpc_port=0, allow_metrics=False, reuse_http_port=True)
        assert preflight.port_problems(opts) == []


def test_metrics_on_the_http_or_grpc_port():
    opts = Options(http_address="127.0.0.1", http_port=9000, grpc_address="127.0.0.1",
                   grpc_port=9001, metrics_address="0.0.0.0", metrics_port=9000)
    assert preflight.port_problems(opts) == [
        "HTTP and metrics cannot share port 9000 (--http-port, --metrics-port)"]
    opts = Options(http_port=9000, grpc_port=9001, metrics_port=9001)
    assert preflight.port_problems(opts) == [
        "gRPC and metrics cannot share port 9001 (--grpc-port, --metrics-port)"]
    # other hosts, or metrics off: no clash
    assert preflight.collisions([("HTTP", "--http-port", "127.0.0.1", 9000, False),
                                 ("metrics", "--metrics-port", "127.0.0.2", 9000, False)]) == []


def test_our_own_endpoints_cannot_share_a_port_even_when_reuse_is_asked():
    """With SO_REUSEPORT on both, HTTP and gRPC would both bind it and the kernel would hand
    each connection to either protocol's listener."""
    opts = Options(http_port=9000, grpc_port=9000, reuse_http_port=True, reuse_grpc_port=True,
                   allow_metrics=False)
    assert preflight.port_problems(opts) == [
        "HTTP and gRPC cannot share port 9000 (--http-port, --grpc-port)"]


def test_grpc_tls_files_are_read_before_anything_starts(tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_text("cert")
    key.write_text("key")
    missing = tmp_path / "nope.pem"
    ok = dict(grpc_use_ssl=True, grpc_server_cert=str(cert), grpc_server_key=str(key))
    assert preflight.tls_problems(Options(**ok)) == []
    assert preflight.tls_problems(Options(**{**ok, "grpc_server_key": str(missing)})) == [
        f"gRPC SSL: cannot read --grpc-server-key '{missing}': No such file or directory"]
    # mutual TLS needs the root certificate too; without gRPC (or TLS) nothing is read
    assert preflight.tls_problems(Options(**ok, grpc_use_ssl_mutual=True)) == [
        "gRPC SSL needs --grpc-root-cert"]
    assert preflight.tls_problems(Options(grpc_use_ssl=True, allow_grpc=False)) == []
    assert preflight.tls_problems(Options(grpc_server_cert=str(missing))) == []


def test_tritonservers_line_names_the_endpoint_it_would_fail_first():
    """tritonserver starts gRPC, then HTTP, then metrics (src/main.cc StartEndpoints) and
    logs "failed to start <GRPC|HTTP|Metrics> service: Unavailable - Socket '<address>:<port>'
    already in use " for the first that fails (checked against Triton 2.51)."""
    with listening() as http, listening() as grpc:
        hp, gp = http.getsockname()[1], grpc.getsockname()[1]
        opts = dict(http_address="127.0.0.1", http_port=hp, grpc_address="127.0.0.1",
                    grpc_port=gp, metrics_port=0)
        assert preflight.triton_line(Options(**opts)) == (
            f"failed to start GRPC service: Unavailable - Socket '127.0.0.1:{gp}' "
            "already in use ")
        assert preflight.triton_line(Options(**{**opts, "allow_grpc": False})) == (
            f"failed to start HTTP service: Unavailable - Socket '127.0.0.1:{hp}' "
            "already in use ")
    assert preflight.triton_line(Options(http_port=0, grpc_port=0, metrics_port=0)) == ""
    # HTTP and metrics on one port: Triton starts HTTP, then fails to bind metrics
    opts = Options(http_address="127.0.0.1", http_port=9000, grpc_port=9001,
                   metrics_address="127.0.0.1", metrics_port=9000)
    assert preflight.triton_line(opts) == (
        "failed to start Metrics service: Unavailable - Socket '127.0.0.1:9000' "
        "already in use ")
