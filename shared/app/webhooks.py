"""Signed webhooks: HMAC-SHA256 over timestamp, idempotency key and raw body, then one execution.

The sender puts the unix time in ``X-Webhook-Timestamp``, its key (optional) in
``Idempotency-Key`` and ``sha256=<hex HMAC-SHA256(secret, signed string)>`` in
``X-Webhook-Signature``, where the signed string is
``f"v1:{timestamp}:{idempotency_key}:{body}"`` (an empty key when the header is absent).
Signing the key stops a captured request from being re-sent under a new key; signing
the timestamp bounds replays to the skew window; inside it, a replayed request (the same
signature) is refused with ``REPLAYED`` (see ``receive_webhook``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.app.audit import audited_trigger
from shared.app.quotas import RateLimited
from shared.app.secrets import SecretResolver
from shared.app.service import StartRequest, WorkflowApp
from shared.app.triggers import StartOutcome, format_time, start_once, trigger_execution_id
from shared.errors import NotFound, WorkflowError
from shared.models import WebhookTrigger

__all__ = [
    "MAX_SKEW_SECONDS",
    "Replayed",
    "SignatureInvalid",
    "WebhookCall",
    "receive_webhook",
    "sign",
    "signed_string",
    "verify_signature",
]

MAX_SKEW_SECONDS = 300
"""How far the sender's timestamp may be from our clock, either way."""
_PREFIX = "sha256="
_VERSION = b"v1"
_KEY_CHARS = re.compile(r"[\x21-\x39\x3b-\x7e]{1,255}")
"""Printable ASCII without ``:`` (so the signed string splits one way only)."""


class SignatureInvalid(WorkflowError):
    """Missing, malformed, stale or wrong signature (answered 401)."""

    code = "UNAUTHENTICATED"


class Replayed(WorkflowError):
    """A signature already received inside the skew window (answered 409): nothing starts."""

    code = "REPLAYED"
    retryable = False


def signed_string(timestamp: str, idempotency_key: str | None, body: bytes) -> bytes:
    """``v1:{timestamp}:{idempotency_key}:{body}``: what the signature covers."""
    key = (idempotency_key or "").encode()
    return b":".join([_VERSION, timestamp.encode(), key, body])


def sign(secret: str, timestamp: str, body: bytes, idempotency_key: str | None = None) -> str:
    """The ``X-Webhook-Signature`` value a sender computes (used by tests and docs)."""
    message = signed_string(timestamp, idempotency_key, body)
    return _PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    max_skew: float = MAX_SKEW_SECONDS,
    idempotency_key: str | None = None,
) -> None:
    """Raise SignatureInvalid unless ``signature`` signs key and body at a fresh ``timestamp``."""
    if not timestamp or not signature:
        raise SignatureInvalid("X-Webhook-Timestamp and X-Webhook-Signature are required")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureInvalid("X-Webhook-Timestamp must be unix seconds")
    if idempotency_key is not None and not _KEY_CHARS.fullmatch(idempotency_key):
        raise WorkflowError(
            "Idempotency-Key must be 1 to 255 printable ASCII characters without ':'",
            code="INVALID_INPUT",
        )
    if abs(now.timestamp() - int(timestamp)) > max_skew:
        raise SignatureInvalid(
            f"timestamp outside the {int(max_skew)} s window", details={"reason": "stale"}
        )
    expected = sign(secret, timestamp, body, idempotency_key)
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SignatureInvalid("signature does not match")


def _fingerprint(signature: str) -> str:
    """What the execution keeps of a signature: enough to spot a replay, useless to send."""
    return hashlib.sha256(signature.strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class WebhookCall:
    """One webhook request, as the edge read it."""

    workflow_id: str
    body: bytes
    timestamp: str | None
    signature: str | None
    idempotency_key: str | None = None
    content_type: str = ""
    source: str = ""
    """Where the call came from (the client address): webhook calls are rate limited
    per workflow and source (empty: one bucket for the workflow)."""


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

    Without an ``Idempotency-Key`` the signature itself is the key. Each execution keeps
    a fingerprint of the signature that started it, in the store, so a replay is
    recognised on any instance: the same signature again is refused with ``REPLAYED``
    (409); the same key under a new signature (a sender's re-signed retry) is a
    ``duplicate`` that starts nothing.

    Calls are rate limited per workflow and source (``RATE_LIMITED``, 429: see
    ``_receive`` for which bucket), and each one is recorded in the audit log as a call of
    ``trigger:webhook``, refused or not.
    """
    return await audited_trigger(
        app.auditor,
        kind="webhook",
        tenant=app.tenant,
        workflow_id=call.workflow_id,
        start=lambda: _receive(app, call, secrets),
    )


async def _admit(app: WorkflowApp, workflow_id: str, source: str) -> None:
    if app.quotas is not None:
        await app.quotas.admit_webhook(app.tenant, workflow_id, source)


async def _receive(app: WorkflowApp, call: WebhookCall, secrets: SecretResolver) -> StartOutcome:
    # With the caller's address, its bucket is taken before any work (a flood from one
    # address costs nothing and blocks no other sender); without one, only calls whose
    # signature verifies take from the bucket of the workflow's signing secret, so
    # unsigned calls cannot use up the legitimate sender's share.
    if call.source:
        await _admit(app, call.workflow_id, f"address:{call.source}")
    definition = await app.get_workflow(call.workflow_id)
    trigger = definition.trigger
    if not isinstance(trigger, WebhookTrigger):
        raise NotFound(f"workflow {call.workflow_id} not found")
    secret = await secrets.resolve(trigger.secret_ref)
    now = app.engine.clock.now()
    verify_signature(
        secret, call.timestamp, call.signature, call.body, now, idempotency_key=call.idempotency_key
    )
    if not call.source:
        await _admit(app, call.workflow_id, f"secret:{trigger.secret_ref}")
    fingerprint = _fingerprint(call.signature or "")
    key = f"key:{call.idempotency_key}" if call.idempotency_key else f"signature:{fingerprint}"
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
            "signatureFingerprint": fingerprint,
            **({"idempotencyKey": call.idempotency_key} if call.idempotency_key else {}),
        },
        execution_id=trigger_execution_id(definition.id, "webhook", key),
        require_active=True,
    )
    try:
        outcome = await start_once(app, request)
    except RateLimited as refused:  # the tenant's start limit: 429 to the sender, not 503
        raise refused.answered_429() from None
    if outcome.status == "inactive":
        raise WorkflowError(f"workflow {definition.id} is inactive", code="WORKFLOW_INACTIVE")
    if outcome.status == "duplicate" and await _seen(app, outcome, fingerprint):
        raise Replayed(
            "this signed request was already received", details={"workflowId": definition.id}
        )
    return outcome


async def _seen(app: WorkflowApp, outcome: StartOutcome, fingerprint: str) -> bool:
    """Whether the execution found was started by this very signature."""
    assert outcome.execution_id is not None
    execution = await app.get_execution(outcome.execution_id)
    return (execution.trigger or {}).get("signatureFingerprint") == fingerprint
