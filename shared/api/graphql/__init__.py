"""The GraphQL API: ``schema`` (in ``schema.py``), HTTP handling and the context getter.

``handle_http(request, principal)`` serves ``POST/GET /graphql`` of the management
function; the stream server mounts ``schema`` (or ``asgi.graphql_app()``) for
``graphql-transport-ws`` subscriptions, with ``get_context`` as its context getter.
See ``docs/graphql.md``.
"""

from shared.api.graphql.context import get_context
from shared.api.graphql.http_handler import handle_http

__all__ = ["get_context", "handle_http"]
