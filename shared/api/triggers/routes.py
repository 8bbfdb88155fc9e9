"""The trigger-handler's HTTP surface (``create_trigger_app``).

- ``POST /`` or ``POST /pubsub``: a Pub/Sub message (CloudEvent or raw push).
- ``POST /schedule/{workflowId}``: a Cloud Scheduler tick.
- ``POST /webhooks/{workflowId}``: a signed webhook.
- ``GET /healthz``.

Paths are relative to where the app is mounted, so the dev server serves it under
``/triggers``.

The Pub/Sub and schedule routes are internal: each checks the OIDC token of its
invoker account first (``shared.api.identity``; 401 ``UNAUTHENTICATED``, nothing read
or started). Their tenant is the runtime's, or the ``?tenant=T`` of a URL the trigger
manager bound to ``T`` (``shared.ports.tenant_binding``: ``&binding=<HMAC>``; 403
``TENANT_BINDING_INVALID`` otherwise). The public webhook route takes ``?tenant=`` as
given: the workflow's own signing secret, looked up in that tenant, proves the call.
Retryable errors are answered 503 on every route, so Pub/Sub, Cloud Scheduler and
webhook senders retry; the deterministic execution ids make those retries start
nothing twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.api.edge import Edge, edge_of
from shared.api.errors import error_response, install_error_handlers
from shared.api.identity import InvokerKind
from shared.api.middleware import CatchAll, RequestGuard
from shared.api.triggers.pubsub import (
    MessageUndecodable,
    is_cloudevent,
    parse_cloudevent,
    parse_push,
)
from shared.app.service import WorkflowApp
from shared.app.triggers import ScheduleFire, dispatch_event, fire_schedule
from shared.app.webhooks import WebhookCall, receive_webhook
from shared.errors import InputInvalid, WorkflowError
from shared.observability import (
    TRACEPARENT,
    TelemetryMiddleware,
    attached,
    traceparent_context,
)
from shared.ports import JOB_PREFIX
from shared.ports.tenant_binding import BINDING_PARAM, verify_binding

__all__ = ["create_trigger_app", "trigger_routes"]

log = logging.getLogger(__name__)

MAX_PUBSUB_BODY = 15 * 1024 * 1024
"""Pub/Sub messages reach 10 MB; base64 and the envelope add about a third."""
MAX_WEBHOOK_BODY = 1024 * 1024


def _failure(error: WorkflowError) -> Response:
    if error.retryable:
        return JSONResponse({"status": "retry", "error": error.to_dict()}, status_code=503)
    return error_response(error)


async def _read(request: Request, limit: int) -> bytes:
    """The body (``RequestGuard`` capped it at the largest limit of the app)."""
    body = await request.body()
    if len(body) > limit:
        raise WorkflowError(f"body larger than {limit} bytes", code="PAYLOAD_TOO_LARGE")
    return body


def _app(request: Request) -> WorkflowApp:
    """The webhook's tenant (the workflow's signing secret proves the call)."""
    app = edge_of(request).app
    return app.for_tenant(request.query_params.get("tenant") or app.tenant)


async def _internal_app(request: Request, kind: InvokerKind, route: str) -> WorkflowApp:
    """The app of an internal trigger call: its invoker's token, then its bound tenant."""
    edge = edge_of(request)
    await edge.identity.check(request, kind)
    tenant = request.query_params.get("tenant")
    if not tenant:
        return edge.app
    binding = request.query_params.get(BINDING_PARAM)
    verify_binding(edge.settings.trigger_binding_key, route, tenant, binding)
    return edge.app.for_tenant(tenant)


async def pubsub(request: Request) -> Response:
    """A Pub/Sub message: a CloudEvent (Eventarc) or a push subscription's body."""
    app = await _internal_app(request, "pubsub", "pubsub")
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
    # The executions a message starts continue its publisher's trace (a publish step).
    with attached(traceparent_context(event.attributes.get(TRACEPARENT))):
        dispatch = await dispatch_event(app, event)
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


async def schedule(request: Request) -> Response:
    """A Cloud Scheduler tick of a workflow's schedule."""
    workflow_id = request.path_params["workflow_id"]
    app = await _internal_app(request, "scheduler", f"schedule/{workflow_id}")
    fire = ScheduleFire(
        workflow_id,
        request.headers.get("x-cloudscheduler-jobname") or f"{JOB_PREFIX}{workflow_id}",
        _schedule_time(request.headers.get("x-cloudscheduler-scheduletime")),
    )
    outcome = await fire_schedule(app, fire)
    log.info(
        "schedule %s of workflow %s: %s",
        fire.job_name,
        workflow_id,
        outcome.status,
        extra={"json_fields": outcome.to_dict()},
    )
    return JSONResponse(outcome.to_dict())


async def webhook(request: Request) -> Response:
    """A signed webhook call of a workflow (signing scheme: ``shared.app.webhooks``).

    202 with the outcome; 401 for a bad or stale signature; 409 ``REPLAYED`` for a
    signed request already received (nothing starts).
    """
    workflow_id = request.path_params["workflow_id"]
    call = WebhookCall(
        workflow_id=workflow_id,
        body=await _read(request, MAX_WEBHOOK_BODY),
        timestamp=request.headers.get("x-webhook-timestamp"),
        signature=request.headers.get("x-webhook-signature"),
        idempotency_key=request.headers.get("idempotency-key") or None,
        content_type=request.headers.get("content-type", ""),
    )
    outcome = await receive_webhook(_app(request), call, edge_of(request).secrets)
    return JSONResponse(outcome.to_dict(), status_code=202)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _on_trigger_error(request: Request, exc: Exception) -> Response:
    """Retryable errors answer 503 on every route, so senders retry; the deterministic
    execution ids make those retries start nothing twice."""
    assert isinstance(exc, WorkflowError)
    if exc.code == "UNAUTHENTICATED":
        log.warning("%s refused: %s", request.url.path, exc.message)
    return _failure(exc)


def trigger_routes() -> list[Route]:
    """The routes of the trigger-handler (Cloud Scheduler jobs target ``/schedule/{id}``)."""
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/", pubsub, methods=["POST"]),
        Route("/pubsub", pubsub, methods=["POST"]),
        Route("/schedule/{workflow_id}", schedule, methods=["POST"]),
        Route("/webhooks/{workflow_id}", webhook, methods=["POST"]),
    ]


def create_trigger_app(edge: Edge, *, lifespan: bool = True) -> Starlette:
    """The trigger-handler app; the edge starts with its lifespan."""
    app = Starlette(
        routes=trigger_routes(),
        middleware=[
            Middleware(TelemetryMiddleware, service="trigger-handler"),
            Middleware(CatchAll),
            # Senders choose their media types (a webhook may post a form): no 415 here.
            Middleware(RequestGuard, max_body=MAX_PUBSUB_BODY, media_types=None),
        ],
        lifespan=edge.lifespan if lifespan else None,
    )
    app.state.edge = edge
    install_error_handlers(app)
    app.add_exception_handler(WorkflowError, _on_trigger_error)
    return app
