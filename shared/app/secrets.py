"""Secret references (``WebhookTrigger.secretRef``) resolved at run time, never stored.

A reference is ``scheme:rest``. Local mode knows ``env:VAR_NAME`` (the value of an
environment variable). The Secret Manager resolver of the cloud backend plugs in as
another scheme of ``SchemeSecretResolver`` (or as the fallback for references
without a scheme, such as ``projects/P/secrets/S/versions/latest``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from shared.errors import WorkflowError

__all__ = [
    "EnvSecretResolver",
    "SchemeSecretResolver",
    "SecretResolver",
    "SecretUnavailable",
    "default_secret_resolver",
]


class SecretUnavailable(WorkflowError):
    """A reference that cannot be resolved (unknown scheme, missing variable).

    Not retryable: a resolver whose backend is down raises TransientError instead.
    """

    code = "SECRET_UNAVAILABLE"


class SecretResolver(Protocol):
    """Turns a secret reference into the secret's value."""

    async def resolve(self, ref: str) -> str: ...


class EnvSecretResolver:
    """``env:VAR_NAME`` -> the variable's value (local mode and tests)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env

    async def resolve(self, ref: str) -> str:
        name = ref.split(":", 1)[1] if ref.startswith("env:") else ref
        env = os.environ if self._env is None else self._env
        value = env.get(name)
        if not value:
            # The variable's name is not secret; its value never appears in errors.
            raise SecretUnavailable(f"environment variable {name} is not set")
        return value


class SchemeSecretResolver:
    """Dispatches on the scheme before the first ``:``; pluggable per scheme."""

    def __init__(
        self, resolvers: Mapping[str, SecretResolver], fallback: SecretResolver | None = None
    ) -> None:
        self._resolvers = dict(resolvers)
        self._fallback = fallback

    def register(self, scheme: str, resolver: SecretResolver) -> None:
        self._resolvers[scheme] = resolver

    async def resolve(self, ref: str) -> str:
        scheme = ref.split(":", 1)[0] if ":" in ref else ""
        resolver = self._resolvers.get(scheme, self._fallback)
        if resolver is None:
            raise SecretUnavailable(f"no resolver for secret reference scheme {scheme!r}")
        return await resolver.resolve(ref)


def default_secret_resolver() -> SchemeSecretResolver:
    """Local mode: ``env:`` references only."""
    return SchemeSecretResolver({"env": EnvSecretResolver()})
