"""The context every resolver gets: who is calling, and the use cases of their tenant.

``info.context`` is a dict. ``handle_http`` builds it from the principal the router
authenticated; the ASGI/WebSocket app builds it with ``get_context``. When the schema
is mounted on a plain strawberry ``GraphQL`` app (whose context is only
``{"request", "response"}``), ``caller`` authenticates that request on first use, so
resolvers behave the same however the schema is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from starlette.requests import HTTPConnection
from strawberry.types import Info

from shared.api.auth import Principal, Unauthenticated
from shared.api.runtime import app_for, get_authenticator
from shared.app import WorkflowApp
from shared.errors import WorkflowError

Context: TypeAlias = dict[str, Any]
GqlInfo: TypeAlias = Info[Context, None]


@dataclass(frozen=True)
class Caller:
    """The principal of the request and the use cases scoped to its tenant."""

    principal: Principal
    app: WorkflowApp


async def build_context(principal: Principal, connection: HTTPConnection | None = None) -> Context:
    """The context of an already authenticated request."""
    return {
        "principal": principal,
        "app": await app_for(principal.tenant),
        "request": connection,
    }


async def get_context(request_or_ws: HTTPConnection, response: object = None) -> Context:
    """Context getter of the ASGI/WebSocket GraphQL app: authenticates the connection.

    A failed authentication does not raise here (strawberry would answer a bare 500 or
    drop the socket): it is kept and raised by the first resolver, so the client gets a
    GraphQL error with ``extensions.code`` ``UNAUTHENTICATED``.
    """
    try:
        principal = await get_authenticator().authenticate(request_or_ws)
    except WorkflowError as exc:
        return {"request": request_or_ws, "response": response, "auth_error": exc}
    context = await build_context(principal, request_or_ws)
    context["response"] = response
    return context


async def caller(info: GqlInfo) -> Caller:
    """The principal and tenant-scoped app of this request (authenticating lazily)."""
    context = info.context
    if "app" not in context and "auth_error" not in context:
        connection = context.get("request")
        if not isinstance(connection, HTTPConnection):
            raise Unauthenticated("no credentials")
        context.update(await get_context(connection, context.get("response")))
    error = context.get("auth_error")
    if isinstance(error, WorkflowError):
        raise error
    return Caller(principal=context["principal"], app=context["app"])
