"""The audit log of the management API: one entry per state-changing REST call, and
one per failed authentication on any route (GraphQL's included).

``AuditMiddleware`` sits inside the routing of the management app, so once the call
is answered it knows the route's endpoint, its path parameters, the principal the
route's dependency authenticated (``_deps.PRINCIPAL`` in the scope), the status and
the error code of the answer. It records ids and codes only: no body, no header value.
Failed authentications are recorded under the principal rate limit of their client
address, and calls refused by a rate limit under that of their principal (a flood
is not one write per request).
GraphQL mutations are recorded by their resolvers' extension (``graphql/audit_api``).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api.auth import Principal
from shared.api.edge import edge_of
from shared.api.rest._deps import PRINCIPAL
from shared.app.audit import request_id_var

__all__ = ["ACTIONS", "AuditMiddleware", "request_id_of", "with_auth_failure_audit"]

ACTIONS: dict[str, str] = {
    "create_workflow": "workflow.create",
    "import_workflows": "workflow.import",
    "update_workflow": "workflow.update",
    "delete_workflow": "workflow.delete",
    "activate_workflow": "workflow.activate",
    "deactivate_workflow": "workflow.deactivate",
    "execute_workflow": "execution.start",
    "send_event": "execution.event",
    "cancel_execution": "execution.cancel",
    "pause_execution": "execution.pause",
    "resume_execution": "execution.resume",
    "redrive_execution": "execution.redrive",
    "create_stream_token": "stream_token.create",
    "migrate_one": "execution.migrate",
    "migrate_many": "execution.migrate_bulk",
    "instantiate_template": "template.instantiate",
}
"""The action recorded for each state-changing endpoint, by handler name. Other
POST/PUT/PATCH/DELETE endpoints are recorded as ``api.<handler name>``."""

UNCHANGING = frozenset({"validate_workflow"})
"""Endpoints called with POST that change nothing (a dry run)."""

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=\-]{1,128}")
_LOCATION = re.compile(r"/(?:workflows|executions)/([^/?#]+)$")
_MAX_ERROR_BODY = 16_384

log = logging.getLogger(__name__)


def request_id_of(scope: Scope) -> str | None:
    """The caller's ``X-Request-Id`` when it looks like an id (else None: the trace id
    is used instead)."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _REQUEST_ID.fullmatch(text) else None
    return None


def _action(scope: Scope) -> str | None:
    """The action of a state-changing REST call, else None."""
    endpoint = scope.get("endpoint")
    name = getattr(endpoint, "__name__", None)
    if not isinstance(name, str) or name in UNCHANGING:
        return None
    if name in ACTIONS:
        return ACTIONS[name]
    return f"api.{name}" if scope.get("method") in _WRITES else None


def _error_code(status: int, body: bytes) -> str:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{status}"
    return code if isinstance(code, str) else f"HTTP_{status}"


SELF_RECORDING = frozenset({"webhook"})
"""Endpoints of the internal apps whose use case records every call itself."""


def with_auth_failure_audit(app: Starlette) -> Starlette:
    """``app`` (the tasks or the trigger app) recording its refused callers: a call
    answered 401 or 403 (a forged Cloud Tasks, Pub/Sub or Scheduler call, a trigger
    URL whose tenant binding does not verify) is an ``auth.failed`` entry. The
    middleware goes innermost, inside the telemetry, so the entry carries the trace."""
    app.user_middleware.append(Middleware(AuditMiddleware, calls=False))
    return app


class AuditMiddleware:
    """Records the outcome of each state-changing call (and each failed authentication).

    Args:
        calls: record state-changing calls (the management API); False: only the
            calls refused with 401 or 403 (the internal apps, whose use cases record
            the calls they serve).
    """

    def __init__(self, app: ASGIApp, *, calls: bool = True) -> None:
        self.app = app
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer: dict[str, Any] = {"status": 500, "body": b"", "location": None}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"location":
                        answer["location"] = value.decode("latin-1")
            elif (
                message["type"] == "http.response.body"
                and answer["status"] >= 400
                and len(answer["body"]) < _MAX_ERROR_BODY
            ):
                answer["body"] += message.get("body", b"")
            await send(message)

        token = request_id_var.set(request_id_of(scope))
        try:
            await self.app(scope, receive, watch)
        except Exception:
            answer["status"], answer["body"] = 500, b""
            await self._record(scope, answer)
            raise
        else:
            await self._record(scope, answer)
        finally:
            request_id_var.reset(token)

    async def _record(self, scope: Scope, answer: dict[str, Any]) -> None:
        status: int = answer["status"]
        if self.calls:
            action = _action(scope)
            if action is None and status != 401:
                return
        else:
            name = getattr(scope.get("endpoint"), "__name__", None)
            if status not in (401, 403) or name in SELF_RECORDING:
                return
            action = None
        edge = edge_of(HTTPConnection(scope))
        auditor = edge.app.auditor
        if auditor is None:
            return
        principal = scope.get(PRINCIPAL)
        params = scope.get("path_params") or {}
        target = params.get("execution_id") or params.get("workflow_id")
        execution_id = params.get("execution_id")
        created = _LOCATION.search(answer["location"] or "")
        if created and status < 300:
            if action == "execution.start":
                execution_id = created.group(1)
            elif target is None:
                target = created.group(1)
        outcome = "ok" if status < 400 else _error_code(status, answer["body"])
        quotas = edge.app.quotas
        if isinstance(principal, Principal):
            tenant, subject = principal.tenant, principal.subject
            if (
                outcome == "RATE_LIMITED"
                and quotas is not None
                and not await quotas.admit_failure_record(tenant, f"principal:{subject}")
            ):
                return  # a runaway client's refusals are sampled, not one write each
        else:  # authentication failed: no tenant is known, the deployment's default it is
            tenant, subject = edge.settings.tenant, "anonymous"
            client = scope.get("client")
            address = str(client[0]) if client else ""
            if quotas is not None and not await quotas.admit_failure_record(tenant, address):
                log.warning("failed authentications from %s: not all recorded", address)
                return
        await auditor.record(
            tenant=tenant,
            subject=subject,
            action=action or "auth.failed",
            target=target,
            execution_id=execution_id,
            outcome=outcome,
            status=status,
            via="rest",
        )
