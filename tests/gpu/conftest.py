"""tests/gpu runs only where tritond counts a GPU; elsewhere every test skips, saying why."""
from __future__ import annotations

import pytest

from tritond import gpus


def pytest_collection_modifyitems(config, items):
    if gpus.count() > 0:
        return
    skip = pytest.mark.skip(reason="no GPU on this host (tritond.gpus.count() == 0)")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
