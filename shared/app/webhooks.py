"""Signed webhooks: HMAC-SHA256 over ``f"{timestamp}.{raw body}"``, then one execution.

The sender puts the unix time in ``X-Webhook-Timestamp`` and
``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` in ``X-Webhook-Signature``.
Signing the timestamp with the body bounds replays to the skew window; inside it, a
replayed request maps to the same execution id (see ``receive_webhook``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.app.secrets import SecretResolver
from shared.app.service import StartRequest, WorkflowApp
from shared.app.triggers import StartOutcome, format_time, start_once, trigger_execution_id
from shared.errors import NotFound, WorkflowError
from shared.models import WebhookTrigger

__all__ = [
    "MAX_SKEW_SECONDS",
    "SignatureInvalid",
    "WebhookCall",
    "receive_webhook",
    "sign",
    "verify_signature",
]

MAX_SKEW_SECONDS = 300
"""How far the sender's timestamp may be from our clock, either way."""
_PREFIX = "sha256="


class SignatureInvalid(WorkflowError):
    """Missing, malformed, stale or wrong signature (answered 401)."""

    code = "UNAUTHENTICATED"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Webhook-Signature`` value a sender computes (used by tests and docs)."""
    message = timestamp.encode() + b"." + body
    return _PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    max_skew: float = MAX_SKEW_SECONDS,
) -> None:
    """Raise SignatureInvalid unless ``signature`` signs ``body`` at a fresh ``timestamp``."""
    if not timestamp or not signature:
        raise SignatureInvalid("X-Webhook-Timestamp and X-Webhook-Signature are required")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureInvalid("X-Webhook-Timestamp must be unix seconds")
    if abs(now.timestamp() - int(timestamp)) > max_skew:
        raise SignatureInvalid(
            f"timestamp outside the {int(max_skew)} s window", details={"reason": "stale"}
        )
    expected = sign(secret, timestamp, body)
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SignatureInvalid("signature does not match")


@dataclass(frozen=True)
class WebhookCall:
    """One webhook request, as the edge read it."""

    workflow_id: str
    body: bytes
    timestamp: str | None
    signature: str | None
    idempotency_key: str | None = None
    content_type: str = ""


def _parse_body(body: bytes, content_type: str) -> Any:
    """JSON when it parses, else text (the signature was over the raw bytes anyway)."""
    text = body.decode("utf-8", errors="replace")
    if not body:
        return None
    try:
        return json.loads(text)
    except ValueError:
        if "json" in content_type:
            raise WorkflowError("body is not valid JSON", code="INVALID_INPUT") from None
        return text


async def receive_webhook(
    app: WorkflowApp, call: WebhookCall, secrets: SecretResolver
) -> StartOutcome:
    """Verify the signature, then start the workflow once per idempotency key.

    Without an ``Idempotency-Key`` the signature itself is the key, so the same signed
    request replayed inside the skew window starts nothing new.
    """
    definition = await app.get_workflow(call.workflow_id)
    trigger = definition.trigger
    if not isinstance(trigger, WebhookTrigger):
        raise NotFound(f"workflow {call.workflow_id} not found")
    secret = await secrets.resolve(trigger.secret_ref)
    now = app.engine.clock.now()
    verify_signature(secret, call.timestamp, call.signature, call.body, now)
    if call.idempotency_key:
        key = f"key:{call.idempotency_key}"
    else:
        key = f"signature:{(call.signature or '').strip().lower()}"
    payload: dict[str, Any] = {
        "body": _parse_body(call.body, call.content_type),
        "receivedAt": format_time(now),
    }
    if call.idempotency_key:
        payload["idempotencyKey"] = call.idempotency_key
    request = StartRequest(
        definition.id,
        {"webhook": payload},
        version=definition.version,
        trigger={
            "type": "webhook",
            **({"idempotencyKey": call.idempotency_key} if call.idempotency_key else {}),
        },
        execution_id=trigger_execution_id(definition.id, "webhook", key),
        require_active=True,
    )
    outcome = await start_once(app, request)
    if outcome.status == "inactive":
        raise WorkflowError(f"workflow {definition.id} is inactive", code="WORKFLOW_INACTIVE")
    return outcome
