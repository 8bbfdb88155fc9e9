"""The model enums, exposed to GraphQL as they are (names on the wire, model values inside).

``strawberry.enum`` attaches the GraphQL definition to the model's own class, so the
resolvers return model values and the schema shows the names.
"""

from __future__ import annotations

import strawberry

from shared.models import ErrorStrategy, ExecutionStatus, StepRunStatus

strawberry.enum(
    ExecutionStatus,
    name="ExecutionStatus",
    description="Lifecycle of an execution; the last four are terminal.",
)
strawberry.enum(
    StepRunStatus,
    name="StepRunStatus",
    description="Lifecycle of one step run (one attempt of one step).",
)
strawberry.enum(
    ErrorStrategy,
    name="ErrorStrategy",
    description="What happens when a step fails for good (after its retries).",
)

__all__ = ["ErrorStrategy", "ExecutionStatus", "StepRunStatus"]
