"""The schema as an ASGI app (HTTP + ``graphql-transport-ws``), for the stream server.

``GraphQLApp`` is strawberry's ``GraphQL`` with ``get_context`` wired in and GraphiQL
only while introspection is enabled. Mounting a plain ``GraphQL(schema, ...)`` works
too: resolvers then authenticate the connection themselves (see ``context.caller``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from shared.api.graphql.context import Context, get_context
from shared.api.graphql.limits import introspection_enabled
from shared.api.graphql.schema import schema


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI app whose context carries the principal and the tenant's app."""

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return await get_context(request, response)


def graphql_app(**options: Any) -> GraphQLApp:
    """The app to mount at ``/graphql``; ``options`` go to strawberry's ``GraphQL``."""
    options.setdefault("subscription_protocols", [GRAPHQL_TRANSPORT_WS_PROTOCOL])
    options.setdefault("graphql_ide", "graphiql" if introspection_enabled() else None)
    return GraphQLApp(schema, **options)
