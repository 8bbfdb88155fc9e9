"""How core errors surface in GraphQL.

Two ways, both with the stable codes of ``shared.errors``:

* Union-returning mutations (``...Result``, batches, execution control) answer the
  problems a client can fix as typed members of the payload union
  (``ValidationErrors``, ``NotFoundError``, ``ConflictError``, ``InvalidStateError``,
  ``ForbiddenError``), built by ``user_error``.
* Everything else (the seed-shaped fields, authentication, transient failures)
  becomes an entry of the response's ``errors`` with ``extensions.code`` (plus
  ``extensions.path`` and ``extensions.errors`` for validation), rewritten by the
  ``ErrorCodes`` extension. Unexpected exceptions become ``INTERNAL`` with a fixed
  message: no stack trace or exception text reaches the client.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeAlias, TypeVar

import strawberry
from graphql import ExecutionResult as CoreResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from shared.api.auth import Forbidden
from shared.errors import (
    Conflict,
    DefinitionInvalid,
    InputInvalid,
    InvalidState,
    Issue,
    NotFound,
    WorkflowError,
)

log = logging.getLogger(__name__)
M = TypeVar("M")
S = TypeVar("S")


@strawberry.type(description="One problem in the input, addressed by a JSON pointer.")
class FieldIssue:
    code: str
    message: str
    path: str = strawberry.field(description="JSON pointer into the input ('' = whole input).")


@strawberry.interface(description="A problem the client can fix; `code` is stable.")
class UserError:
    code: str
    message: str
    path: str | None = strawberry.field(description="JSON pointer of the offending input.")


@strawberry.type(description="The input is invalid; `issues` lists every problem found.")
class ValidationErrors(UserError):
    issues: list[FieldIssue]


@strawberry.type(description="The workflow, version, execution or step run does not exist.")
class NotFoundError(UserError):
    pass


@strawberry.type(description="A concurrent change won, or the expected version is stale.")
class ConflictError(UserError):
    pass


@strawberry.type(description="The operation does not apply to the object's current state.")
class InvalidStateError(UserError):
    pass


@strawberry.type(description="The caller's role does not allow this operation.")
class ForbiddenError(UserError):
    pass


AnyUserError: TypeAlias = (
    ValidationErrors | NotFoundError | ConflictError | InvalidStateError | ForbiddenError
)


def _issue(issue: Issue) -> FieldIssue:
    return FieldIssue(code=issue.code, message=issue.message, path=issue.path)


def user_error(exc: Exception) -> AnyUserError | None:
    """The payload member for an error the client can fix, else ``None``."""
    if not isinstance(exc, WorkflowError):
        return None
    path = exc.path or None
    if isinstance(exc, DefinitionInvalid):
        issues = [_issue(i) for i in exc.issues]
        return ValidationErrors(code=exc.code, message=exc.message, path=path, issues=issues)
    if isinstance(exc, InputInvalid):
        issue = FieldIssue(code=exc.code, message=exc.message, path=exc.path)
        return ValidationErrors(code=exc.code, message=exc.message, path=path, issues=[issue])
    kinds: tuple[tuple[type[WorkflowError], Any], ...] = (
        (NotFound, NotFoundError),
        (Conflict, ConflictError),
        (InvalidState, InvalidStateError),
        (Forbidden, ForbiddenError),
    )
    for error_type, member in kinds:
        if isinstance(exc, error_type):
            result: AnyUserError = member(code=exc.code, message=exc.message, path=path)
            return result
    return None


answered: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "wfe_graphql_answered", default=None
)
"""Set by the audit extension around a mutation: the payloads ``as_payload`` answered so
far, so that a batch cut short by an error still has its finished items recorded."""


async def as_payload(work: Awaitable[M], convert: Callable[[M], S]) -> S | AnyUserError:
    """Run a use case; a client-fixable error becomes the union member, others raise."""
    try:
        payload: S | AnyUserError = convert(await work)
    except WorkflowError as exc:
        error = user_error(exc)
        if error is None:
            raise
        payload = error
    seen = answered.get()
    if seen is not None:
        seen.append(payload)
    return payload


_GRAPHQL_CODES = (
    ("exceeds maximum operation depth", "QUERY_TOO_DEEP"),
    ("aliases found. Allowed", "TOO_MANY_ALIASES"),
    ("tokens. Parsing aborted", "QUERY_TOO_LARGE"),
    ("introspection has been disabled", "INTROSPECTION_DISABLED"),
    ("Syntax Error", "GRAPHQL_PARSE_FAILED"),
    ("Variable '$", "BAD_USER_INPUT"),
)


def error_extensions(exc: WorkflowError) -> dict[str, Any]:
    """``{"code", "path"?, "errors"?, "retryable"?}`` of a core error."""
    extensions: dict[str, Any] = {"code": exc.code}
    if exc.path:
        extensions["path"] = exc.path
    if isinstance(exc, DefinitionInvalid):
        extensions["errors"] = [issue.to_dict() for issue in exc.issues]
    if exc.retryable:
        extensions["retryable"] = True
    return extensions


def format_error(error: GraphQLError) -> GraphQLError:
    """The client-facing version of an error: a stable code, never a stack trace."""
    original = error.original_error
    if isinstance(original, WorkflowError):
        message, extensions = original.message, error_extensions(original)
    elif original is not None and not isinstance(original, GraphQLError):
        message, extensions = "internal error", {"code": "INTERNAL"}
    else:
        code = "GRAPHQL_VALIDATION_FAILED" if error.path is None else "INTERNAL"
        code = next((c for text, c in _GRAPHQL_CODES if text in error.message), code)
        message, extensions = error.message, {**(error.extensions or {}), "code": code}
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def log_errors(errors: list[GraphQLError]) -> None:
    """Log unexpected failures with their traceback; expected ones stay quiet."""
    for error in errors:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            continue
        if isinstance(original, WorkflowError):
            log.debug("graphql operation refused: %s %s", original.code, original.message)
        else:
            log.error("graphql resolver failed", exc_info=original)


class ErrorCodes(SchemaExtension):
    """Rewrite every error of a result (or of each streamed result) with ``format_error``."""

    _streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        result = self.execution_context.result
        if not self._streamed and isinstance(result, (CoreResult, ExecutionResult)):
            _rewrite(result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._streamed = True
        _rewrite(result)
        yield None


def _rewrite(result: Any) -> None:
    errors = getattr(result, "errors", None)
    if errors:
        result.errors = [format_error(error) for error in errors]
