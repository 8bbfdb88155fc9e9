"""The secret port: references to secrets, the rules they obey, and their resolver.

A reference is ``scheme:rest`` and names an entry of a declared secret store, never
a secret itself; workflows hold references, and a resolver turns one into its value
at run time (``shared.app.secrets`` holds the resolvers). Only declared stores
answer:

- ``env:WFE_SECRET_<NAME>``: an environment variable whose name starts with
  ``WFE_SECRET_`` (locally you set it; on Cloud Run, Terraform fills it from Secret
  Manager). Any other variable (``env:WFE_API_KEY_SALT``, ``env:HOME``) is refused
  with ``SECRET_REF_FORBIDDEN``: the server's own configuration is not a secret store.
- ``sm:<name>``: a Secret Manager secret, by id or full version name.

``check_secret_ref`` applies these rules without reading anything (validation).
"""

from __future__ import annotations

import re
from typing import Protocol

from shared.errors import WorkflowError

__all__ = [
    "SECRET_ENV_PREFIX",
    "SecretRefForbidden",
    "SecretResolver",
    "SecretUnavailable",
    "check_secret_ref",
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
