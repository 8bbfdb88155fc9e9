"""Clock adapters: the system's UTC clock and a manual one that tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock", "SystemClock", "as_utc"]

_DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; a naive one is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class SystemClock:
    """The wall clock, timezone-aware in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; ``now()`` is stable between moves."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = as_utc(start) if start is not None else _DEFAULT_START

    def now(self) -> datetime:
        """The clock's current time (UTC)."""
        return self._now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move forward by ``seconds`` (or a timedelta) and return the new time."""
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError("a ManualClock only moves forward; use set() to go back")
        self._now += step
        return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (naive means UTC); going back in time is allowed."""
        self._now = as_utc(moment)
