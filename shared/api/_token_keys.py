"""The keys that sign the ID tokens ``shared.api.identity`` accepts.

``GoogleCerts``: Google's published certificates (fetched on first use, cached).
``DevKeys``: a key pair of this process (or of ``WFE_DEV_KEY_FILE``) and its
self-signed certificate, which also mints tokens shaped like Google's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from google.auth import crypt, jwt

__all__ = [
    "DEV_AUDIENCE",
    "DEV_INVOKER",
    "GOOGLE_CERTS_URL",
    "DevKeys",
    "GoogleCerts",
    "KeySource",
    "generate_private_pem",
    "process_dev_keys",
]

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
DEV_INVOKER = "wfe-dev-invoker@wfe.local"
"""Invoker account of the dev verifier when no service account is configured."""
DEV_AUDIENCE = "wfe-local"
"""Audience of the dev verifier when no audience is configured."""


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
