"""The GraphQL API: the schema (``schema.py``), served by ``GraphQLApp`` (``app.py``)
over HTTP and WebSocket with the context of ``context.py``. See ``docs/graphql.md``."""

from shared.api.graphql.app import GraphQLApp
from shared.api.graphql.schema import schema

__all__ = ["GraphQLApp", "schema"]
