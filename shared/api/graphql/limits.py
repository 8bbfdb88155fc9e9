"""Limits on what one GraphQL document may ask for (DESIGN 9).

Depth, alias and token limits use strawberry's own extensions. Introspection is on
by default (GraphiQL locally) and switched off with the setting
``WFE_GRAPHQL_INTROSPECTION=false``: the app puts the edge's setting in each
operation's context (``"introspection"``), which ``IntrospectionSwitch`` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

MAX_DEPTH = 10
"""Levels allowed below a root field (introspection fields are not counted)."""
MAX_ALIASES = 30
"""Aliased fields allowed in one document (stops alias-multiplied queries)."""
MAX_TOKENS = 2000
"""Lexer tokens allowed in one document (an introspection query needs a few hundred)."""
MAX_BATCH = 100
"""Items one batch mutation accepts."""
MAX_PAGE = 200
"""Largest ``first`` a list field accepts."""


class IntrospectionSwitch(SchemaExtension):
    """Refuses introspection unless the operation's context allows it (a context without
    the key, such as a test's ``schema.execute``, allows it)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        allowed = context.get("introspection", True) if isinstance(context, dict) else True
        if not allowed:
            context = self.execution_context
            context.validation_rules = (
                *context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield


def limit_extensions() -> list[Callable[[], SchemaExtension]]:
    """Fresh limit extensions for each operation (strawberry wants factories)."""
    return [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        IntrospectionSwitch,
    ]
