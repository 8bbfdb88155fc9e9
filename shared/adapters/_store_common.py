"""Helpers shared by the embedded stores: sort keys, cursors and event listeners."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from shared.adapters.clock import as_utc
from shared.errors import InputInvalid
from shared.models import ExecutionEvent
from shared.ports import Page

__all__ = [
    "EventListener",
    "Listeners",
    "SortKey",
    "after_cursor",
    "check_limit",
    "decode_cursor",
    "encode_cursor",
    "epoch",
    "epoch_or_none",
    "paginate",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

EventListener = Callable[[list[ExecutionEvent]], None]
"""Called with the events of one transaction after it committed."""

SortKey = tuple[float, str]
"""(epoch seconds, id): listings sort on the time descending, then the id ascending."""


def epoch(moment: datetime) -> float:
    """Seconds since the Unix epoch of ``moment`` (naive means UTC)."""
    return as_utc(moment).timestamp()


def epoch_or_none(moment: datetime | None) -> float | None:
    """``epoch(moment)``, or None when there is no moment."""
    return None if moment is None else epoch(moment)


def encode_cursor(key: SortKey) -> str:
    """The opaque cursor that resumes a listing after ``key``."""
    raw = json.dumps([key[0], key[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> SortKey:
    """The sort key inside ``cursor``; InputInvalid when it is not one of ours."""
    try:
        moment, ident = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if not isinstance(ident, str) or isinstance(moment, bool):
            raise TypeError(cursor)
        return float(moment), ident
    except (ValueError, TypeError, UnicodeError, binascii.Error) as exc:
        raise InputInvalid("invalid page cursor", path="/cursor") from exc


def after_cursor(key: SortKey, cursor: SortKey | None) -> bool:
    """True when ``key`` comes after ``cursor`` in (time desc, id asc) order."""
    if cursor is None:
        return True
    return key[0] < cursor[0] or (key[0] == cursor[0] and key[1] > cursor[1])


class Listeners:
    """Callbacks told about the events of every committed transaction."""

    def __init__(self) -> None:
        self._callbacks: list[EventListener] = []

    def add_listener(self, callback: EventListener) -> None:
        """Call ``callback`` with the events of each transaction that commits some."""
        self._callbacks.append(callback)

    def remove_listener(self, callback: EventListener) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def notify(self, events: list[ExecutionEvent]) -> None:
        """Hand ``events`` to every listener; a failing listener is logged, not raised."""
        if not events:
            return
        for callback in list(self._callbacks):
            try:
                callback([event.model_copy(deep=True) for event in events])
            except Exception:
                logger.exception("event listener %r failed", callback)


def check_limit(limit: int) -> int:
    """``limit`` if it is a usable page size; InputInvalid otherwise."""
    if limit < 1:
        raise InputInvalid(f"limit must be at least 1, got {limit}", path="/limit")
    return limit


def paginate(rows: list[tuple[SortKey, T]], cursor: str | None, limit: int) -> Page[T]:
    """One page of ``rows`` in (time desc, id asc) order, resuming after ``cursor``."""
    check_limit(limit)
    start = decode_cursor(cursor) if cursor else None
    ordered = sorted(rows, key=lambda row: (-row[0][0], row[0][1]))
    remaining = [row for row in ordered if after_cursor(row[0], start)]
    page = remaining[:limit]
    more = len(remaining) > limit
    return Page([item for _, item in page], encode_cursor(page[-1][0]) if more else None)
