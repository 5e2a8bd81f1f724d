"""frontend/http/halfclose.py: a closed peer resets the probe, a half-closed one does not."""
import socket
import time

from tritond.frontend.http.halfclose import PROBE, _TCP_CLOSE, tcp_state


def _pair():
    lst = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(lst.getsockname())
    server, _ = lst.accept()
    lst.close()
    return client, server


def _after_probe(server) -> int:
    server.sendall(PROBE)
    time.sleep(0.05)
    return tcp_state(server)


def test_closed_peer_resets_the_probe():
    client, server = _pair()
    client.close()
    assert server.recv(10) == b""                    # the FIN
    assert _after_probe(server) == _TCP_CLOSE
    server.close()


def test_half_closed_peer_reads_the_probe():
    client, server = _pair()
    client.shutdown(socket.SHUT_WR)
    assert server.recv(10) == b""
    assert _after_probe(server) != _TCP_CLOSE
    assert client.recv(100) == PROBE
    client.close()
    server.close()


def test_not_tcp():
    a, b = socket.socketpair()
    assert tcp_state(a) == -1
    a.close()
    b.close()
