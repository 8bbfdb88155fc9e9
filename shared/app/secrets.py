"""The secret resolvers: references (a webhook's ``secretRef``, an http step's
``secrets``) resolved at run time, never stored. The rules live in
``shared.ports.secrets``; the resolvers here answer them:

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
from collections.abc import Mapping

from shared.ports.secrets import (
    SECRET_ENV_PREFIX,
    SecretRefForbidden,
    SecretResolver,
    SecretUnavailable,
    check_secret_ref,
)

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
