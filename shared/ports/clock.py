"""The clock port: wall-clock time, injectable so tests can move it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["Clock"]


class Clock(Protocol):
    """Wall-clock time, injectable so tests can move it."""

    def now(self) -> datetime: ...
