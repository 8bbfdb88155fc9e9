"""Secret references (``WebhookTrigger.secretRef``) resolved at run time, never stored.

A reference is ``scheme:rest``, and only declared secret stores answer:

- ``env:WFE_SECRET_<NAME>``: an environment variable whose name starts with
  ``WFE_SECRET_``. Locally you set it; on Cloud Run, Terraform fills it from Secret
  Manager (``WFE_SECRET_WEBHOOK_<NAME>`` on trigger-handler). Any other variable
  (``env:WFE_API_KEY_SALT``, ``env:HOME``) is refused with ``SECRET_REF_FORBIDDEN``:
  the server's own configuration is not a secret store for workflows.
- ``sm:<name>``: a Secret Manager secret read directly. The reference syntax is
  reserved; without a Secret Manager client it is refused with ``SECRET_UNAVAILABLE``
  (use the ``env:WFE_SECRET_`` variables Terraform mounts from Secret Manager).

``check_secret_ref`` applies the same rules without reading anything (validation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Protocol

from shared.errors import WorkflowError

__all__ = [
    "SECRET_ENV_PREFIX",
    "EnvSecretResolver",
    "SchemeSecretResolver",
    "SecretRefForbidden",
    "SecretResolver",
    "SecretUnavailable",
    "UnconfiguredSecretResolver",
    "check_secret_ref",
    "default_secret_resolver",
]

SECRET_ENV_PREFIX = "WFE_SECRET_"
"""The only environment variables ``env:`` references may read."""
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,127}")
_SM_NAME = re.compile(r"[A-Za-z0-9_./-]{1,512}")
"""A secret id, or its full ``projects/P/secrets/S/versions/V`` name."""


class SecretUnavailable(WorkflowError):
    """A reference that cannot be resolved (unknown scheme, missing variable).

    Not retryable: a resolver whose backend is down raises TransientError instead.
    """

    code = "SECRET_UNAVAILABLE"
    retryable = False


class SecretRefForbidden(SecretUnavailable):
    """A reference outside the declared secret stores (e.g. ``env:WFE_API_KEY_SALT``)."""

    code = "SECRET_REF_FORBIDDEN"


def check_secret_ref(ref: str) -> None:
    """Raise SecretRefForbidden unless ``ref`` names a declared secret store's entry."""
    scheme, _, name = ref.partition(":")
    if scheme == "env":
        if not name.startswith(SECRET_ENV_PREFIX) or not _ENV_NAME.fullmatch(name):
            raise SecretRefForbidden(
                f"secretRef env:{name[:64]} is not allowed: environment references must "
                f"name a {SECRET_ENV_PREFIX}* variable"
            )
        return
    if scheme == "sm":
        if not _SM_NAME.fullmatch(name):
            raise SecretRefForbidden("secretRef sm:<name> takes a Secret Manager secret name")
        return
    raise SecretRefForbidden(
        f"secretRef scheme {scheme[:16]!r} is not allowed (use env:{SECRET_ENV_PREFIX}<NAME> "
        "or sm:<name>)"
    )


class SecretResolver(Protocol):
    """Turns a secret reference into the secret's value."""

    async def resolve(self, ref: str) -> str: ...


class EnvSecretResolver:
    """``env:WFE_SECRET_<NAME>`` -> the variable's value; any other name is refused."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env

    async def resolve(self, ref: str) -> str:
        check_secret_ref(ref if ref.startswith("env:") else f"env:{ref}")
        name = ref.removeprefix("env:")
        env = os.environ if self._env is None else self._env
        value = env.get(name)
        if not value:
            # The variable's name is not secret; its value never appears in errors.
            raise SecretUnavailable(f"environment variable {name} is not set")
        return value


class UnconfiguredSecretResolver:
    """A declared store this deployment cannot read yet (``sm:`` without its client)."""

    def __init__(self, scheme: str, why: str) -> None:
        self._scheme = scheme
        self._why = why

    async def resolve(self, ref: str) -> str:
        check_secret_ref(ref)
        raise SecretUnavailable(f"secretRef {self._scheme}: cannot be resolved: {self._why}")


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
            raise SecretRefForbidden(f"no resolver for secret reference scheme {scheme[:16]!r}")
        return await resolver.resolve(ref)


def default_secret_resolver() -> SchemeSecretResolver:
    """``env:WFE_SECRET_*`` references; ``sm:`` refused until a Secret Manager client exists."""
    return SchemeSecretResolver(
        {
            "env": EnvSecretResolver(),
            "sm": UnconfiguredSecretResolver(
                "sm",
                "no Secret Manager client is installed; reference the secret as "
                f"env:{SECRET_ENV_PREFIX}<NAME> mounted from Secret Manager (docs/triggers.md)",
            ),
        }
    )
