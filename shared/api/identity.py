"""Who is calling, proven by a Google-signed ID token (OIDC), checked in code.

Cloud Tasks, Cloud Scheduler and Pub/Sub push send ``Authorization: Bearer <ID token>``
signed by Google for the service account of the task, job or subscription. Behind
Cloud Run IAM, the internal endpoints check that token again (defence in depth):
``TokenVerifier`` checks the signature, the issuer (``accounts.google.com``), the
audience and the expiry with ``google-auth``; ``InternalIdentity`` then checks that
the verified ``email`` is the invoker service account configured for the route.

The keys are pluggable (``KeySource``): ``GoogleCerts`` are Google's published
certificates (fetched on first use, cached); ``DevKeys`` is a key pair of this process
(or of ``WFE_DEV_KEY_FILE``) whose certificate the same verifier uses, so local mode
and every test go through the same checks with tokens ``DevKeys.mint`` signs.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import google.auth.exceptions
from google.auth import jwt
from starlette.requests import HTTPConnection

from shared.api._token_keys import (
    DEV_AUDIENCE,
    DEV_INVOKER,
    DevKeys,
    GoogleCerts,
    KeySource,
    generate_private_pem,
    process_dev_keys,
)
from shared.api.auth import Unauthenticated
from shared.errors import InputInvalid
from shared.settings import Settings

__all__ = [
    "DEV_AUDIENCE",
    "DEV_INVOKER",
    "GOOGLE_ISSUERS",
    "DevKeys",
    "GoogleCerts",
    "InternalIdentity",
    "Invoker",
    "InvokerKind",
    "KeySource",
    "TokenVerifier",
    "bearer_token",
    "dev_keys_from_settings",
    "generate_private_pem",
    "identity_from_settings",
    "verifier_mode",
]

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})

InvokerKind = Literal["tasks", "sweep", "scheduler", "pubsub"]


class TokenVerifier:
    """Verifies Google-style ID tokens: signature, issuer, audience, expiry, email."""

    def __init__(self, keys: KeySource, *, clock_skew_seconds: int = 10) -> None:
        self.keys = keys
        self._skew = clock_skew_seconds

    async def verify(self, token: str, audiences: Collection[str]) -> Mapping[str, Any]:
        """The claims of a valid token for one of ``audiences``; else ``Unauthenticated``."""
        if not audiences:
            raise Unauthenticated("no token audience is configured for this endpoint")
        try:
            header = json.loads(_b64decode(token.split(".", 1)[0]))
            key_id = header.get("kid") if isinstance(header, dict) else None
            certs = await self.keys.certs(key_id if isinstance(key_id, str) else None)
            claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs=certs, audience=list(audiences), clock_skew_in_seconds=self._skew
            )
        except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthenticated(f"invalid ID token: {_reason(exc)}") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthenticated("invalid ID token: not issued by accounts.google.com")
        if not isinstance(claims.get("email"), str) or claims.get("email_verified") is not True:
            raise Unauthenticated("invalid ID token: no verified email")
        return claims


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _reason(exc: Exception) -> str:
    text = str(exc).split("\n", 1)[0]
    return text[:200] or type(exc).__name__


def bearer_token(connection: HTTPConnection) -> str:
    """The token of ``Authorization: Bearer <token>``; ``Unauthenticated`` without one."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing ID token (Authorization: Bearer)")
    return token.strip()


@dataclass(frozen=True)
class Invoker:
    """Who may call one family of internal routes: accounts and token audiences."""

    service_accounts: frozenset[str]
    audiences: frozenset[str]


@dataclass
class InternalIdentity:
    """The check of the internal endpoints: a verified token of the route's invoker.

    ``verifier`` None means ``token_verifier=none`` (emulators): nothing is checked.
    ``minter`` is the dev key pair (None with Google's keys): whoever calls the
    internal routes over HTTP in dev mode mints its tokens with it (``token_for``).
    """

    verifier: TokenVerifier | None
    invokers: Mapping[InvokerKind, Invoker]
    minter: DevKeys | None = None
    mode: str = "dev"

    async def check(self, connection: HTTPConnection, kind: InvokerKind) -> str:
        """The verified caller email; ``Unauthenticated`` unless the invoker of ``kind``."""
        if self.verifier is None:
            return "unverified"
        invoker = self.invokers[kind]
        if not invoker.service_accounts or not invoker.audiences:
            log.warning("refusing a %s call: no invoker account or audience is configured", kind)
            raise Unauthenticated(f"no invoker service account and audience configured ({kind})")
        claims = await self.verifier.verify(bearer_token(connection), invoker.audiences)
        email = str(claims["email"])
        if email not in invoker.service_accounts:
            raise Unauthenticated(f"{email} may not call this endpoint")
        return email

    def token_for(self, kind: InvokerKind, *, audience: str | None = None) -> str:
        """A dev token of the invoker of ``kind`` (dev mode only)."""
        if self.minter is None:
            raise RuntimeError("only the dev verifier mints tokens")
        invoker = self.invokers[kind]
        return self.minter.mint(
            audience or sorted(invoker.audiences)[0], sorted(invoker.service_accounts)[0]
        )


def dev_keys_from_settings(settings: Settings) -> DevKeys:
    """The dev key pair: ``WFE_DEV_KEY_FILE``'s, else this process's."""
    path = settings.dev_key_file
    if not path:
        return process_dev_keys()
    try:
        return DevKeys.from_private_pem(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputInvalid(
            f"setting WFE_DEV_KEY_FILE: cannot read a PEM RSA private key ({type(exc).__name__})",
            code="INVALID_SETTINGS",
        ) from None


def verifier_mode(settings: Settings) -> Literal["google", "dev", "none"]:
    """The ``token_verifier`` setting with ``auto`` resolved by backend."""
    mode = settings.token_verifier
    if mode == "auto":
        return "google" if settings.backend == "gcp" else "dev"
    return mode


def identity_from_settings(settings: Settings) -> InternalIdentity:
    """The internal endpoints' check, from the settings (fails here, at startup, when
    ``token_verifier=none`` is asked for without ``allow_unauthenticated``)."""
    mode = verifier_mode(settings)
    gcp = settings.gcp
    dev = mode == "dev"

    def accounts(*emails: str) -> frozenset[str]:
        found = frozenset(email for email in emails if email)
        return found or (frozenset({DEV_INVOKER}) if dev else frozenset())

    def audiences(audience: str) -> frozenset[str]:
        return frozenset({audience} if audience else ({DEV_AUDIENCE} if dev else ()))

    tasks_audience = audiences(gcp.tasks_audience or gcp.execute_step_url)
    invokers: dict[InvokerKind, Invoker] = {
        "tasks": Invoker(accounts(gcp.tasks_service_account), tasks_audience),
        "sweep": Invoker(
            accounts(gcp.scheduler_service_account, gcp.tasks_service_account), tasks_audience
        ),
        "scheduler": Invoker(
            accounts(gcp.scheduler_service_account),
            audiences(gcp.scheduler_audience or gcp.trigger_handler_url),
        ),
        "pubsub": Invoker(
            accounts(gcp.pubsub_service_account),
            audiences(gcp.pubsub_audience or gcp.trigger_handler_url),
        ),
    }
    if mode == "none":
        if not settings.allow_unauthenticated:
            raise InputInvalid(
                "WFE_TOKEN_VERIFIER=none leaves the internal endpoints open: it needs "
                "WFE_ALLOW_UNAUTHENTICATED=true (emulators and throwaway projects only)",
                code="INVALID_SETTINGS",
            )
        log.warning(
            "WFE_TOKEN_VERIFIER=none: execute-step, sweep, Pub/Sub and Scheduler endpoints "
            "accept calls from anyone; never run a real deployment like this"
        )
        return InternalIdentity(None, invokers, mode=mode)
    if mode == "google":  # a route without account or audience refuses every call
        return InternalIdentity(TokenVerifier(GoogleCerts()), invokers, mode=mode)
    keys = dev_keys_from_settings(settings)
    return InternalIdentity(TokenVerifier(keys), invokers, minter=keys, mode=mode)
