"""Pure functions of the execution semantics: run ids, backoff, retry decisions."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.models import ErrorInfo, RetryPolicy

MAX_WAIT_HOP_SECONDS = 30 * 86_400
"""Cloud Tasks refuses schedule times more than 30 days ahead: longer waits hop."""


def run_id(
    execution_id: str, scope: str, step_id: str, iteration: int, attempt: int, generation: int
) -> str:
    """Deterministic step-run id: the same step visit always gets the same id."""
    key = f"{execution_id}|{scope}|{step_id}|{iteration}|{attempt}|{generation}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def idempotency_key(
    execution_id: str, scope: str, step_id: str, iteration: int, generation: int
) -> str:
    """The key a step sends to services: the same for every retry of one step visit,
    so a retried call after a lost response is recognised as the same request."""
    key = f"idem|{execution_id}|{scope}|{step_id}|{iteration}|{generation}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def child_execution_id(parent_run_id: str) -> str:
    """Id of the child execution a subworkflow step run starts (one per run)."""
    digest = hashlib.sha256(f"child|{parent_run_id}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _unit_interval(seed: str) -> float:
    return int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def backoff_seconds(policy: RetryPolicy, attempt: int, seed: str) -> float:
    """Delay before attempt ``attempt + 1`` after ``attempt`` failed.

    Exponential from ``initial_delay_seconds``, capped at ``max_delay_seconds``, with a
    jitter of +/- ``jitter`` that is deterministic per ``seed`` (the run id), so a
    redelivered commit schedules the same time.
    """
    base = policy.initial_delay_seconds * policy.multiplier ** max(attempt - 1, 0)
    base = min(base, policy.max_delay_seconds)
    spread = policy.jitter * (2 * _unit_interval(seed) - 1)
    return max(0.0, min(base * (1 + spread), policy.max_delay_seconds))


def should_retry(policy: RetryPolicy | None, attempt: int, error: ErrorInfo) -> bool:
    """Whether a failed attempt is retried under ``policy``."""
    if policy is None or not error.retryable or attempt >= policy.max_attempts:
        return False
    return policy.retry_on is None or error.code in policy.retry_on


def cap_output(value: Any, max_bytes: int) -> tuple[Any, bool]:
    """Keep step outputs under the store's document cap; mark what was cut."""
    if _surely_small(value, max_bytes):
        return value, False
    try:
        text = json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = json.dumps(str(value))
        value = str(value)
    if len(text.encode()) <= max_bytes:
        return value, False
    preview = text.encode()[: max(0, max_bytes - 200)].decode(errors="ignore")
    return {"truncated": True, "bytes": len(text.encode()), "preview": preview}, True


def _surely_small(value: Any, max_bytes: int) -> bool:
    """Whether the JSON of ``value`` certainly fits in ``max_bytes``, without encoding it
    (the common output of a cheap step: a scalar, or a small map or list of scalars)."""
    bound = _json_bound(value, max_bytes, 2)
    return bound is not None and bound <= max_bytes


_SMALL_ITEMS = 32
"""Items of a map or list that ``_json_bound`` looks through before giving up."""


def _json_bound(value: Any, max_bytes: int, depth: int) -> int | None:
    """An upper bound of the bytes of ``value``'s JSON, or None when not cheap to tell:
    an ASCII character takes at most 6 bytes (``\\u0001``), another 12 (a surrogate
    pair of escapes), plus the string's quotes."""
    kind = type(value)
    if value is None or kind is bool:
        return 5
    if kind is float:
        return 32
    if kind is int:
        return 32 if value.bit_length() <= 64 else None
    if kind is str:  # a character outside the BMP is two escapes (a surrogate pair)
        return (6 if value.isascii() else 12) * len(value) + 2
    if depth == 0 or kind not in (dict, list) or len(value) > _SMALL_ITEMS:
        return None
    total = 2
    if kind is dict:
        for key, item in value.items():
            inner = _json_bound(item, max_bytes, depth - 1)
            if type(key) is not str or inner is None:
                return None
            total += 12 * len(key) + 4 + inner  # quotes, colon, comma
    else:
        for item in value:
            inner = _json_bound(item, max_bytes, depth - 1)
            if inner is None:
                return None
            total += inner + 1
    return total if total <= max_bytes else None


def parse_scope(scope: str) -> tuple[str, str, int]:
    """Split ``'<outer scope>/<owner>/<index>'`` into (outer scope, owner run id, index).

    Scopes nest: a body inside a body has the owner's scope as prefix.
    """
    head, _, index = scope.rpartition("/")
    outer, _, owner = head.rpartition("/")
    if outer.endswith("/"):
        outer = outer[:-1]
    return outer, owner, int(index)
