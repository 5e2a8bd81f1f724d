"""Loaded before any test module: the in-process gRPC servers (engine, servicer harness)
run on the same grpcio I/O layer as a spawned frontend (frontend/grpc/iomgr.py), which
must be chosen before anything imports grpc."""
from tritond.frontend.grpc.iomgr import prefer_iomgr

prefer_iomgr()


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def aoti_package(tmp_path_factory):
    """The AOTInductor test package (tests/aoti_models.py), compiled once per session:
    compiling takes tens of seconds, every torch_aoti test shares it."""
    from tests import aoti_models

    reason = aoti_models.missing()
    if reason:
        pytest.skip(reason)
    return _compiled_once(tmp_path_factory, aoti_models.compile_package)


def _compiled_once(tmp_path_factory, compile_package):
    """One compile per run, not per xdist worker: the workers share their base folder's
    parent, and the first to take the lock compiles while the others wait for it."""
    import fcntl
    import os

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "aoti-shared"
    shared.mkdir(exist_ok=True)
    target = shared / "add_sub.pt2"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            partial = shared / "partial" / "add_sub.pt2"
            partial.parent.mkdir(exist_ok=True)
            os.replace(compile_package(partial), target)
    return target


def pytest_sessionfinish(session, exitstatus):
    """Servers' logs live in a folder of this process (each xdist worker has its own):
    a run leaves none behind unless TRITOND_TEST_LOGS names where to keep them."""
    from tests import server

    server.remove_logs()
