import pytest

from tests.server import Server


@pytest.fixture(scope="session")
def server():
    srv = Server()
    yield srv
    srv.stop()
