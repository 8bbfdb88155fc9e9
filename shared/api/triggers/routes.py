"""The trigger-handler's HTTP surface: one handler, routed by path and headers.

- ``POST /`` or ``POST /pubsub``: a Pub/Sub message (CloudEvent or raw push).
- ``POST /schedule/{workflowId}``: a Cloud Scheduler tick.
- ``POST /webhooks/{workflowId}``: a signed webhook.
- ``GET /healthz``.

Paths are relative to where the handler is mounted (``root_path``), so the dev server
can serve it under a prefix such as ``/triggers``.

Every route takes ``?tenant=`` (default: the runtime's tenant). Retryable errors are
answered 503 on every route, so Pub/Sub, Cloud Scheduler and webhook senders retry;
the deterministic execution ids make those retries start nothing twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.api.errors import error_response
from shared.api.runtime import app_for, get_runtime
from shared.api.triggers.pubsub import (
    MessageUndecodable,
    is_cloudevent,
    parse_cloudevent,
    parse_push,
)
from shared.api.triggers.wiring import get_secret_resolver
from shared.app.service import WorkflowApp
from shared.app.trigger_manager import JOB_PREFIX
from shared.app.triggers import ScheduleFire, dispatch_event, fire_schedule
from shared.app.webhooks import WebhookCall, receive_webhook
from shared.errors import InputInvalid, WorkflowError

__all__ = ["handle_trigger_request"]

log = logging.getLogger(__name__)

MAX_PUBSUB_BODY = 15 * 1024 * 1024
"""Pub/Sub messages reach 10 MB; base64 and the envelope add about a third."""
MAX_WEBHOOK_BODY = 1024 * 1024


def _failure(error: WorkflowError) -> Response:
    if error.retryable:
        return JSONResponse({"status": "retry", "error": error.to_dict()}, status_code=503)
    return error_response(error)


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WorkflowError(f"body larger than {limit} bytes", code="PAYLOAD_TOO_LARGE")
    body = await request.body()
    if len(body) > limit:
        raise WorkflowError(f"body larger than {limit} bytes", code="PAYLOAD_TOO_LARGE")
    return body


async def _app(request: Request) -> WorkflowApp:
    tenant = request.query_params.get("tenant") or (await get_runtime()).app.tenant
    return await app_for(tenant)


async def _pubsub(request: Request) -> Response:
    body = await _read(request, MAX_PUBSUB_BODY)
    try:
        if is_cloudevent(request.headers):
            event = parse_cloudevent(request.headers, body)
        else:
            event = parse_push(body, request.query_params.get("topic"))
    except MessageUndecodable as exc:
        # Acknowledged on purpose: Pub/Sub redelivers any non-2xx answer until the
        # message expires, and no redelivery can decode this one.
        log.error("dropping undecodable Pub/Sub message: %s", exc.message)
        return JSONResponse({"status": "rejected", "error": exc.to_dict()})
    if event is None:
        log.warning("ignoring CloudEvent of type %s", request.headers.get("ce-type"))
        return JSONResponse({"status": "ignored"})
    dispatch = await dispatch_event(await _app(request), event)
    log.info(
        "message %s on %s: %d execution(s)",
        event.message_id,
        event.topic,
        len(dispatch.outcomes),
        extra={
            "json_fields": {
                "messageId": event.message_id,
                "topic": event.topic,
                **dispatch.to_dict(),
            }
        },
    )
    return JSONResponse(dispatch.to_dict())


def _schedule_time(raw: str | None) -> datetime | None:
    if not raw:
        return None  # a manual "force run": the use case takes the current minute
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InputInvalid("X-CloudScheduler-ScheduleTime must be RFC 3339") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _schedule(request: Request, workflow_id: str) -> Response:
    fire = ScheduleFire(
        workflow_id,
        request.headers.get("x-cloudscheduler-jobname") or f"{JOB_PREFIX}{workflow_id}",
        _schedule_time(request.headers.get("x-cloudscheduler-scheduletime")),
    )
    outcome = await fire_schedule(await _app(request), fire)
    log.info(
        "schedule %s of workflow %s: %s",
        fire.job_name,
        workflow_id,
        outcome.status,
        extra={"json_fields": outcome.to_dict()},
    )
    return JSONResponse(outcome.to_dict())


async def _webhook(request: Request, workflow_id: str) -> Response:
    call = WebhookCall(
        workflow_id=workflow_id,
        body=await _read(request, MAX_WEBHOOK_BODY),
        timestamp=request.headers.get("x-webhook-timestamp"),
        signature=request.headers.get("x-webhook-signature"),
        idempotency_key=request.headers.get("idempotency-key") or None,
        content_type=request.headers.get("content-type", ""),
    )
    outcome = await receive_webhook(await _app(request), call, get_secret_resolver())
    return JSONResponse(outcome.to_dict(), status_code=202)


def _route_path(request: Request) -> str:
    """The path below the mount point (the dev server may mount this under a prefix)."""
    path = request.url.path
    root = str(request.scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.rstrip("/") or "/"


async def handle_trigger_request(request: Request) -> Response:
    """Route one request of the trigger-handler function."""
    path = _route_path(request)
    parts = path.strip("/").split("/")
    if request.method == "GET" and parts[-1] == "healthz":
        return JSONResponse({"status": "ok"})
    if request.method != "POST":
        return error_response(WorkflowError("use POST", code="METHOD_NOT_ALLOWED"))
    try:
        if len(parts) == 2 and parts[0] == "schedule":
            return await _schedule(request, parts[1])
        if len(parts) == 2 and parts[0] == "webhooks":
            return await _webhook(request, parts[1])
        if path in ("/", "/pubsub"):
            return await _pubsub(request)
    except WorkflowError as exc:
        if exc.code == "UNAUTHENTICATED":
            log.warning("webhook %s refused: %s", path, exc.message)
        return _failure(exc)
    return error_response(WorkflowError(f"no route for {path}", code="NOT_FOUND"))
