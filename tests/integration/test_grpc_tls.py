"""gRPC over TLS and mutual TLS with certificates made at test time (openssl CLI)."""
import shutil
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.server import REPO, Server

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both CA-signed."""
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "1", "-subj", "/CN=tritond-test-ca", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for who in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out",
                f"{who}.csr", "-subj", f"/CN={who}", cwd=d)
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{who}.pem", "-days", "1", "-extfile", "san.ext",
                cwd=d)
    return d


def infer(client):
    a = np.ones((1, 16), np.int32)
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        inp = grpcclient.InferInput(name, [1, 16], "INT32")
        inp.set_data_from_numpy(a)
        inputs.append(inp)
    return client.infer("simple", inputs).as_numpy("OUTPUT0")


def test_tls(certs):
    s = Server([REPO], "--grpc-use-ssl=true", f"--grpc-server-cert={certs / 'server.pem'}",
               f"--grpc-server-key={certs / 'server.key'}")
    try:
        c = grpcclient.InferenceServerClient(s.grpc_url, ssl=True,
                                             root_certificates=str(certs / "ca.pem"))
        assert c.is_server_live()
        assert (infer(c) == 2).all()
        plain = grpcclient.InferenceServerClient(s.grpc_url)      # no TLS: refused
        with pytest.raises(InferenceServerException):
            plain.is_server_live(client_timeout=5)
    finally:
        s.stop()


def test_mutual_tls_needs_a_client_certificate(certs):
    s = Server([REPO], "--grpc-use-ssl-mutual=true",
               f"--grpc-server-cert={certs / 'server.pem'}",
               f"--grpc-server-key={certs / 'server.key'}",
               f"--grpc-root-cert={certs / 'ca.pem'}")
    try:
        c = grpcclient.InferenceServerClient(
            s.grpc_url, ssl=True, root_certificates=str(certs / "ca.pem"),
            private_key=str(certs / "client.key"), certificate_chain=str(certs / "client.pem"))
        assert (infer(c) == 2).all()
        anonymous = grpcclient.InferenceServerClient(s.grpc_url, ssl=True,
                                                     root_certificates=str(certs / "ca.pem"))
        with pytest.raises(InferenceServerException):
            anonymous.is_server_live(client_timeout=5)
    finally:
        s.stop()


def test_unreadable_certificate_stops_the_start(certs, tmp_path):
    s = Server([REPO], "--grpc-use-ssl=true", f"--grpc-server-cert={tmp_path / 'nope.pem'}",
               f"--grpc-server-key={certs / 'server.key'}", wait_ready=False)
    try:
        assert s.proc.wait(60) != 0
        assert f"gRPC SSL: cannot read --grpc-server-cert '{tmp_path / 'nope.pem'}'" in s.output()
    finally:
        s.kill()
