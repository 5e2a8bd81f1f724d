"""Fixtures for worker tests."""
from __future__ import annotations

import pytest

from .helpers import Frontend


@pytest.fixture
def repo(tmp_path):
    return tmp_path / "repo"


@pytest.fixture
def frontend():
    fe = Frontend()
    yield fe
    fe.close()
