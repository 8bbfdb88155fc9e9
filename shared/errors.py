"""One error hierarchy for the whole core.

Every error carries a stable ``code``, a human ``message``, an optional JSON-pointer
``path`` and whether retrying can help (``retryable``). Adapters translate SDK
exceptions into these; only the function edges map them to HTTP status codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def pointer_token(token: object) -> str:
    """One JSON-pointer reference token, escaped (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def json_pointer(*parts: object) -> str:
    """A JSON pointer from path parts (``json_pointer("steps", 0)`` is ``/steps/0``)."""
    return "".join("/" + pointer_token(part) for part in parts)


@dataclass(frozen=True)
class Issue:
    """One problem found in user input, addressed by a JSON pointer."""

    code: str
    message: str
    path: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "path": self.path}


class WorkflowError(Exception):
    """Root of every error the core raises on purpose."""

    code = "INTERNAL"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        path: str = "",
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        self.path = path
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.path:
            body["path"] = self.path
        if self.details:
            body["details"] = self.details
        return body


class DefinitionInvalid(WorkflowError):
    """A workflow definition failed validation; ``issues`` lists every problem."""

    code = "VALIDATION_FAILED"

    def __init__(self, issues: list[Issue]) -> None:
        first = issues[0] if issues else Issue("VALIDATION_FAILED", "invalid definition")
        super().__init__(
            f"{len(issues)} validation error(s); first: {first.message}", path=first.path
        )
        self.issues = issues

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["errors"] = [issue.to_dict() for issue in self.issues]
        return body


class InputInvalid(WorkflowError):
    """A request or input document is malformed (not JSON/YAML, wrong shape)."""

    code = "INVALID_INPUT"


class NotFound(WorkflowError):
    """The addressed workflow, version, execution or step run does not exist."""

    code = "NOT_FOUND"


class SenderNotAllowed(WorkflowError):
    """An event a ``wait_for_event`` step takes only from named principals (``answeredBy``)
    came from someone else (403)."""

    code = "EVENT_SENDER_NOT_ALLOWED"


class Conflict(WorkflowError):
    """A concurrent writer won, or a precondition no longer holds; retrying may help."""

    code = "CONFLICT"
    retryable = True


class InvalidState(WorkflowError):
    """The operation does not apply to the object's current state (e.g. resume a finished run)."""

    code = "INVALID_STATE"


class ExecutionBeingDeleted(InvalidState):
    """The retention sweep has begun deleting this finished execution (409): it is going,
    so nothing may bring it back (a redrive). Firestore deletes a large execution over
    several transactions and marks it in the first; memory and SQLite delete it in one."""

    code = "EXECUTION_BEING_DELETED"


class TransientError(WorkflowError):
    """A dependency failed in a way that retrying is expected to fix."""

    code = "TRANSIENT"
    retryable = True


class StepFailed(WorkflowError):
    """A step's own failure. ``retryable`` says whether the retry policy may apply."""

    code = "STEP_FAILED"
    retryable = True


class StartRateLimited(WorkflowError):
    """A workflow's ``rateLimit`` (mode ``refuse``) refused a start: 429 with
    ``Retry-After`` at the edge (``details.retryAfterSeconds``, whole seconds, at least
    1). Retryable: a trigger's delivery is retried later, a client waits."""

    code = "RATE_LIMITED"
    retryable = True

    def __init__(self, message: str, retry_after: float, *, key: str = "") -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, details={"retryAfterSeconds": self.retry_after, "key": key})
