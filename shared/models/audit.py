"""The audit log's entries: who did what to which object, when, and how it ended."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.models._base import ApiModel, utcnow

__all__ = ["AuditEntry", "AuditVia"]

AuditVia = Literal["rest", "graphql", "trigger"]


class AuditEntry(ApiModel):
    """One state-changing call (or a failed authentication). Never holds a request
    body, a header value or a secret: ids, names and codes only."""

    id: str
    """Unique id of the entry."""
    time: datetime = Field(default_factory=utcnow)
    """When the call was answered (UTC)."""
    tenant: str
    """Tenant the call acted in (failed authentications: the default tenant)."""
    subject: str
    """Who called: the principal's subject, ``trigger:<kind>`` for triggers,
    ``anonymous`` for a failed authentication."""
    action: str
    """What was asked, as ``<object>.<verb>`` (``workflow.create``, ``execution.cancel``,
    ``auth.failed``...)."""
    target: str | None = None
    """The workflow or execution id acted on, when there is one."""
    execution_id: str | None = None
    """The execution a start created or found (``execution.start``)."""
    outcome: str = "ok"
    """``ok``, or the stable error code the call was answered with."""
    status: int | None = None
    """HTTP status of the answer, when the call came over HTTP."""
    request_id: str | None = None
    """``X-Request-Id`` of the request, else its trace id."""
    via: AuditVia = "rest"
    """Which door the call came through."""
