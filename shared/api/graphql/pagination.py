"""Cursor pagination shared by every list field: ``first`` and an opaque ``after``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

import strawberry

from shared.api.graphql.limits import MAX_PAGE
from shared.errors import InputInvalid

T = TypeVar("T")
_PREFIX = "offset:"


@strawberry.type(description="Where a page ends; pass `endCursor` as `after` for the next.")
class PageInfo:
    end_cursor: str | None
    has_next_page: bool

    @classmethod
    def from_cursor(cls, next_cursor: str | None) -> PageInfo:
        return cls(end_cursor=next_cursor, has_next_page=next_cursor is not None)


def check_first(first: int) -> int:
    """``first`` if it is a valid page size, else INVALID_INPUT."""
    if not 1 <= first <= MAX_PAGE:
        raise InputInvalid(f"'first' must be between 1 and {MAX_PAGE}", path="/first")
    return first


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode()


def _decode(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith(_PREFIX) and (offset := int(text[len(_PREFIX) :])) >= 0:
            return offset
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InputInvalid("'after' is not a cursor this list returned", path="/after")


def offset_page(items: Sequence[T], first: int, after: str | None) -> tuple[list[T], str | None]:
    """One page of an in-memory list and the cursor of the next page (``None`` at the end)."""
    start = _decode(after)
    end = start + check_first(first)
    return list(items[start:end]), _encode(end) if end < len(items) else None
