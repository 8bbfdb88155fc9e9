"""The audit log, for the admins of a tenant: ``GET /api/v1/audit``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BeforeValidator
from starlette.responses import Response

from shared.api.auth import Principal, authorize
from shared.api.edge import edge_of
from shared.api.rest._deps import API, principal_of, respond_page
from shared.api.rest._docs import errors, router_for
from shared.api.rest.schemas import _Body
from shared.api.rest.workflows import Cursor, Limit
from shared.errors import WorkflowError
from shared.models.audit import AuditEntry
from shared.ports.audit import AuditQuery

router = router_for("audit")


class AuditPage(_Body):
    items: list[AuditEntry]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; null on the last page."""


async def _admin(
    request: Request, principal: Annotated[Principal, Depends(principal_of)]
) -> Principal:
    authorize(principal, "admin")
    return principal


Admin = Annotated[Principal, Depends(_admin)]


def _rfc3339_only(value: object) -> object:
    """A time is written as one (``2026-12-03T10:00:00Z``); pydantic would also take a
    number of seconds since 1970 (``0.5``), which the schema does not allow."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2026-12-03T10:00:00Z")
    return value


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
Moment = Annotated[datetime, BeforeValidator(_rfc3339_only)]
Filter = Annotated[str | None, Query(max_length=500)]


@router.get(f"{API}/audit", response_model=AuditPage, responses=errors(400, 403))
async def list_audit(
    request: Request,
    principal: Admin,
    action: Annotated[Filter, Query(description="Entries of this action only.")] = None,
    subject: Annotated[Filter, Query(description="Entries of this subject only.")] = None,
    target: Annotated[
        Filter, Query(description="Entries about this workflow or execution id only.")
    ] = None,
    since: Annotated[Moment | None, Query(description="Entries at or after this time.")] = None,
    until: Annotated[Moment | None, Query(description="Entries before this time.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """List the tenant's audit log, newest first (admins only)."""
    auditor = edge_of(request).app.auditor
    if auditor is None:
        raise WorkflowError("this deployment keeps no audit log", code="NOT_FOUND")
    page = await auditor.log.query(
        AuditQuery(
            tenant=principal.tenant,
            action=action or None,
            subject=subject or None,
            target=target or None,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor or None,
        )
    )
    return respond_page(page)
