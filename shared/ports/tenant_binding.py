"""Tenant bindings: the tenant of a trigger URL, signed by the deployment.

A Cloud Scheduler job (or a push subscription) the trigger manager creates for tenant
``T`` calls the trigger-handler at ``...?tenant=T&binding=<HMAC>``, where the HMAC is
keyed by the server secret ``WFE_TRIGGER_BINDING_KEY`` over the route and the tenant.
The trigger-handler starts executions in ``T`` only when the binding verifies; a URL
without ``tenant`` means the runtime's own tenant. So the tenant comes from what the
deployment configured, never from whoever sends the request: a caller holding a valid
invoker token for tenant A's job cannot name tenant B.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from shared.errors import WorkflowError

__all__ = ["BINDING_PARAM", "TenantBindingInvalid", "bind_path", "binding_for", "verify_binding"]

BINDING_PARAM = "binding"
_CONTEXT = "wfe-tenant-binding/v1"


class TenantBindingInvalid(WorkflowError):
    """A trigger call names a tenant its URL's binding does not prove (403)."""

    code = "TENANT_BINDING_INVALID"


def binding_for(key: str, route: str, tenant: str) -> str:
    """The binding of ``tenant`` on ``route`` (``schedule/<workflow id>`` or ``pubsub``)."""
    message = f"{_CONTEXT}\n{route}\n{tenant}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def bind_path(path: str, route: str, tenant: str | None, key: str) -> str:
    """``path`` with ``tenant=T&binding=...`` appended (unchanged without a tenant).

    ``path`` may already hold a query (``?tenant=T`` from ``ScheduleSpec.target_path``,
    which is then kept and only the binding appended).
    """
    if not tenant:
        return path
    if not key:
        raise TenantBindingInvalid(
            f"binding a trigger to tenant {tenant!r} needs WFE_TRIGGER_BINDING_KEY"
        )
    binding = f"{BINDING_PARAM}={binding_for(key, route, tenant)}"
    if "tenant=" in path.partition("?")[2]:
        return f"{path}&{binding}"
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}tenant={quote(tenant, safe='')}&{binding}"


def verify_binding(key: str, route: str, tenant: str, binding: str | None) -> None:
    """Raise ``TenantBindingInvalid`` unless ``binding`` proves ``tenant`` on ``route``."""
    if not key:
        raise TenantBindingInvalid("trigger calls may not name a tenant here (no binding key)")
    if not binding or not hmac.compare_digest(binding, binding_for(key, route, tenant)):
        raise TenantBindingInvalid(
            f"the tenant binding of this {route.split('/')[0]} URL is invalid"
        )
