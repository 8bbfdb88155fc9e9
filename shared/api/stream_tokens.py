"""Stream tokens: how a browser, which cannot set headers on an ``EventSource`` or a
``WebSocket``, opens a stream without putting an API key in a URL.

``POST /api/v1/stream-tokens`` (authenticated like any API call) mints a token bound to
the caller's subject, tenant and role on one execution or one workflow, valid for
about a minute; the stream endpoints accept it as ``?token=`` or as the WebSocket
subprotocol ``wfe-stream-token.<token>`` (offer ``wfe-events`` beside it: the server
selects that one, so the token is not echoed back). A token opens that one stream
(reconnecting to it while valid is fine) and nothing else: not another execution, not
the REST API, not GraphQL.

A token is ``wst1.<claims>.<mac>``: base64url JSON claims and an HMAC-SHA256 over
them with the key of the deployment (``WFE_STREAM_TOKEN_KEY``; by default derived
from ``WFE_API_KEY_SALT``, which every function of a deployment shares, so ``create``
mints and ``status-stream`` verifies; without either, a key drawn per process, which
serves ``wfe dev``'s single process).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from starlette.requests import HTTPConnection

from shared.api.auth import Principal, Role, Unauthenticated

__all__ = [
    "STREAM_PROTOCOL",
    "TOKEN_PROTOCOL_PREFIX",
    "MintedToken",
    "StreamTokens",
    "presented_token",
    "selected_protocol",
    "stream_token_key",
]

_VERSION = "wst1"
TOKEN_PROTOCOL_PREFIX = "wfe-stream-token."
"""A WebSocket subprotocol carrying a token: ``wfe-stream-token.<token>``."""
STREAM_PROTOCOL = "wfe-events"
"""The subprotocol the server selects when a client offered it with a token."""
DEFAULT_TTL_SECONDS = 60.0
MAX_TOKEN_LENGTH = 2048

Target = Literal["execution", "workflow"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def stream_token_key(explicit: str, api_key_salt: str) -> bytes:
    """The deployment's key: ``explicit``, else derived from the API key salt, else a
    key of this process only."""
    if explicit:
        return explicit.encode()
    if api_key_salt:
        return hmac.new(api_key_salt.encode(), b"wfe stream tokens v1", hashlib.sha256).digest()
    return os.urandom(32)


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: datetime


class StreamTokens:
    """Mints and checks stream tokens with one key."""

    def __init__(
        self,
        key: bytes,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < 16:
            raise ValueError("a stream token key has at least 16 bytes")
        self._key = key
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def _mac(self, claims: str) -> str:
        return _b64(hmac.new(self._key, f"{_VERSION}.{claims}".encode(), hashlib.sha256).digest())

    def mint(self, principal: Principal, target: Target, target_id: str, role: Role) -> MintedToken:
        """A token for ``principal`` to read the stream of one execution or workflow,
        with ``role`` (the principal's role on that workflow, checked by the caller)."""
        expires = self._clock() + self.ttl_seconds
        claims = {
            "sub": principal.subject,
            "ten": principal.tenant,
            "rol": role.name.lower(),
            "tgt": target,
            "id": target_id,
            "exp": round(expires, 3),
        }
        encoded = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return MintedToken(
            f"{_VERSION}.{encoded}.{self._mac(encoded)}", datetime.fromtimestamp(expires, UTC)
        )

    def verify(self, token: str, target: Target, target_id: str) -> Principal:
        """The principal of a token valid now for this stream; UNAUTHENTICATED otherwise
        (the reason is not told: forged, expired and misused tokens look alike)."""
        refused = Unauthenticated("invalid or expired stream token")
        parts = token.split(".")
        if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3 or parts[0] != _VERSION:
            raise refused
        if not hmac.compare_digest(parts[2], self._mac(parts[1])):
            raise refused
        try:
            claims = json.loads(_unb64(parts[1]))
            role = Role[str(claims["rol"]).upper()]
            expires = float(claims["exp"])
            subject, tenant = str(claims["sub"]), str(claims["ten"])
            bound = (claims["tgt"], claims["id"])
        except (ValueError, KeyError, TypeError):
            raise refused from None
        if expires <= self._clock() or bound != (target, target_id):
            raise refused
        return Principal(subject=subject, tenant=tenant, role=role)


def presented_token(connection: HTTPConnection) -> str | None:
    """The stream token of a request: ``?token=``, or a WebSocket subprotocol."""
    token = connection.query_params.get("token")
    if token:
        return token
    for protocol in _offered_protocols(connection):
        if protocol.startswith(TOKEN_PROTOCOL_PREFIX):
            return protocol.removeprefix(TOKEN_PROTOCOL_PREFIX)
    return None


def _offered_protocols(connection: HTTPConnection) -> list[str]:
    header = connection.headers.get("sec-websocket-protocol", "")
    return [part.strip() for part in header.split(",") if part.strip()]


def selected_protocol(connection: HTTPConnection) -> str | None:
    """The subprotocol to accept a WebSocket with: ``wfe-events`` when offered; else the
    token's own, when the client offered only that (browsers fail a handshake whose
    answer names none of the protocols they offered)."""
    offered = _offered_protocols(connection)
    if STREAM_PROTOCOL in offered:
        return STREAM_PROTOCOL
    return next((p for p in offered if p.startswith(TOKEN_PROTOCOL_PREFIX)), None)
