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

import asyncio
import base64
import datetime as dt
import functools
import json
import logging
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import google.auth.exceptions
from google.auth import crypt, jwt
from starlette.requests import HTTPConnection

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
    "identity_from_settings",
    "verifier_mode",
]

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
DEV_INVOKER = "wfe-dev-invoker@wfe.local"
"""Invoker account of the dev verifier when no service account is configured."""
DEV_AUDIENCE = "wfe-local"
"""Audience of the dev verifier when no audience is configured."""

InvokerKind = Literal["tasks", "sweep", "scheduler", "pubsub"]


class KeySource(Protocol):
    """Certificates (key id -> PEM) of the keys that sign the accepted tokens."""

    async def certs(self, key_id: str | None) -> Mapping[str, str]: ...


class GoogleCerts:
    """Google's published signing certificates, cached for their ``max-age``.

    Fetched on first use (never at import or startup); an unknown key id refetches,
    at most once a minute, since Google rotates its keys.
    """

    def __init__(self, url: str = GOOGLE_CERTS_URL, *, min_refresh_seconds: float = 60.0) -> None:
        self._url = url
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = -min_refresh_seconds
        self._min_refresh = min_refresh_seconds
        self._lock = asyncio.Lock()

    async def certs(self, key_id: str | None) -> Mapping[str, str]:
        now = time.monotonic()
        stale = now >= self._expires or (key_id is not None and key_id not in self._certs)
        if stale and now - self._fetched >= self._min_refresh:
            async with self._lock:
                if time.monotonic() - self._fetched >= self._min_refresh:
                    await asyncio.to_thread(self._fetch)
        return self._certs

    def _fetch(self) -> None:
        from google.auth.transport.requests import Request

        self._fetched = time.monotonic()
        try:
            response = Request()(self._url, method="GET", timeout=10)
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            certs = json.loads(response.data)
        except Exception as exc:  # keep the cached ones; the token is refused if unknown
            log.warning("fetching Google's certificates failed: %s", exc)
            return
        max_age = 3600.0
        for part in response.headers.get("cache-control", "").split(","):
            name, _, value = part.strip().partition("=")
            if name == "max-age" and value.isdigit():
                max_age = float(value)
        self._certs = {str(k): str(v) for k, v in certs.items()}
        self._expires = self._fetched + max_age


@dataclass(frozen=True)
class DevKeys:
    """A signing key pair and its self-signed certificate: the dev verifier's keys."""

    private_pem: str
    certificate_pem: str
    key_id: str

    @classmethod
    def from_private_pem(cls, pem: str) -> DevKeys:
        """Keys of a PEM RSA private key (``WFE_DEV_KEY_FILE``)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the dev key must be an RSA private key")
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_id = uuid.uuid5(uuid.NAMESPACE_OID, public.hex()).hex
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wfe dev token signer")])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        return cls(pem, certificate.public_bytes(serialization.Encoding.PEM).decode(), key_id)

    @classmethod
    def generate(cls) -> DevKeys:
        """A fresh key pair (tests that need a second, foreign key)."""
        return cls.from_private_pem(generate_private_pem())

    async def certs(self, key_id: str | None) -> Mapping[str, str]:
        return {self.key_id: self.certificate_pem}

    def mint(
        self,
        audience: str,
        email: str = DEV_INVOKER,
        *,
        lifetime_seconds: int = 3600,
        issued_at: int | None = None,
        **claims: Any,
    ) -> str:
        """An ID token as Google signs them, signed by this key."""
        now = int(time.time()) if issued_at is None else issued_at
        payload = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "sub": str(uuid.uuid5(uuid.NAMESPACE_DNS, email).int)[:21],
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + lifetime_seconds,
            **claims,
        }
        signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            self.private_pem, key_id=self.key_id
        )
        token: bytes = jwt.encode(signer, payload)  # type: ignore[no-untyped-call]
        return token.decode()


def generate_private_pem() -> str:
    """A new PEM RSA private key (2048 bits)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@functools.cache
def process_dev_keys() -> DevKeys:
    """This process's dev key pair, generated on first use."""
    return DevKeys.generate()


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
    if mode == "google":
        for kind, invoker in invokers.items():
            if not (invoker.service_accounts and invoker.audiences):
                log.warning("no invoker account or audience for %s calls: all refused", kind)
        return InternalIdentity(TokenVerifier(GoogleCerts()), invokers, mode=mode)
    keys = dev_keys_from_settings(settings)
    return InternalIdentity(TokenVerifier(keys), invokers, minter=keys, mode=mode)
