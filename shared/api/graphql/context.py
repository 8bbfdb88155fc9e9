"""The context every resolver gets: who is calling, and the use cases of their tenant.

``info.context`` is a dict built by ``GraphQLApp.get_context`` from the principal
the app authenticated before strawberry saw the request (HTTP or WebSocket), and
the edge the app was built with (for the broker of subscriptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from starlette.requests import HTTPConnection
from strawberry.types import Info

from shared.api.auth import Principal, Unauthenticated
from shared.api.broker import EventBroker
from shared.app import WorkflowApp

Context: TypeAlias = dict[str, Any]
GqlInfo: TypeAlias = Info[Context, None]


@dataclass(frozen=True)
class Caller:
    """The principal of the request and the use cases scoped to its tenant."""

    principal: Principal
    app: WorkflowApp


def build_context(
    principal: Principal,
    app: WorkflowApp,
    broker: EventBroker | None = None,
    connection: HTTPConnection | None = None,
    response: object = None,
) -> Context:
    """The context of an authenticated request; ``app`` is scoped to its tenant here."""
    return {
        "principal": principal,
        "app": app.for_tenant(principal.tenant),
        "broker": broker,
        "request": connection,
        "response": response,
    }


async def caller(info: GqlInfo) -> Caller:
    """The principal and tenant-scoped app of this request."""
    context = info.context
    if "principal" not in context:
        raise Unauthenticated("no credentials")
    return Caller(principal=context["principal"], app=context["app"])


def broker_of(info: GqlInfo) -> EventBroker:
    broker = info.context.get("broker")
    if not isinstance(broker, EventBroker):
        raise Unauthenticated("subscriptions are served over WebSocket with credentials")
    return broker
