"""Fixtures for the frontend tests (helpers live in ``harness.py``)."""
from tests.frontend.harness import harness  # noqa: F401  (pytest fixture)
