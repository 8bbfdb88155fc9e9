"""Fixtures of the function tests: an isolated environment (the runtime, the edge and the
in-process apps come from ``tests/edge_fixtures.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_environ() -> Iterator[None]:
    """Undo what a test (or the framework: FUNCTION_TARGET) does to ``os.environ``."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
