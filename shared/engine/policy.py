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
    """Whether ``value`` is a scalar whose JSON certainly fits in ``max_bytes``, without
    encoding it (the common output of a cheap step): a string takes at most 6 bytes a
    character (``\\uXXXX``) plus its quotes."""
    kind = type(value)
    if value is None or kind is bool:
        return max_bytes >= 5
    if kind is float:
        return max_bytes >= 32
    if kind is int:
        return max_bytes >= 32 and value.bit_length() <= 64
    return kind is str and 6 * len(value) + 2 <= max_bytes


def parse_scope(scope: str) -> tuple[str, str, int]:
    """Split ``'<outer scope>/<owner>/<index>'`` into (outer scope, owner run id, index).

    Scopes nest: a body inside a body has the owner's scope as prefix.
    """
    head, _, index = scope.rpartition("/")
    outer, _, owner = head.rpartition("/")
    if outer.endswith("/"):
        outer = outer[:-1]
    return outer, owner, int(index)
