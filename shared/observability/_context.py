"""Correlation fields of log lines (execution, step, run, tenant), held in a contextvar.

Every log line written while a ``log_context`` is open carries its fields, so one
``log.info`` deep in a step type needs no ids passed down to it. Context variables
follow asyncio tasks: a task created inside the block inherits the fields.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

__all__ = ["bind_log_context", "current_log_fields", "log_context", "reset_log_context"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_FIELDS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "wfe_log_fields", default=_EMPTY
)

LogToken = contextvars.Token[Mapping[str, str]]


def _named(
    execution_id: str | None,
    step_id: str | None,
    run_id: str | None,
    tenant: str | None,
    workflow_id: str | None,
) -> dict[str, str]:
    """The JSON names of the fields that are set (the names Cloud Logging filters use)."""
    fields = {
        "executionId": execution_id,
        "stepId": step_id,
        "runId": run_id,
        "tenant": tenant,
        "workflowId": workflow_id,
    }
    return {name: value for name, value in fields.items() if value is not None}


def bind_log_context(
    *,
    execution_id: str | None = None,
    step_id: str | None = None,
    run_id: str | None = None,
    tenant: str | None = None,
    workflow_id: str | None = None,
) -> LogToken:
    """Add fields to the current log context; pass the token to ``reset_log_context``.

    Fields left ``None`` keep the value an enclosing context gave them.
    """
    added = _named(execution_id, step_id, run_id, tenant, workflow_id)
    current = _FIELDS.get()
    return _FIELDS.set({**current, **added} if current else added)


def reset_log_context(token: LogToken) -> None:
    """Restore the log context ``bind_log_context`` replaced."""
    _FIELDS.reset(token)


@contextmanager
def log_context(
    *,
    execution_id: str | None = None,
    step_id: str | None = None,
    run_id: str | None = None,
    tenant: str | None = None,
    workflow_id: str | None = None,
) -> Iterator[None]:
    """Tag every log line written inside the block with these fields."""
    token = bind_log_context(
        execution_id=execution_id,
        step_id=step_id,
        run_id=run_id,
        tenant=tenant,
        workflow_id=workflow_id,
    )
    try:
        yield
    finally:
        _FIELDS.reset(token)


def current_log_fields() -> Mapping[str, str]:
    """The correlation fields in force here (JSON names), for formatters and tests."""
    return _FIELDS.get()
