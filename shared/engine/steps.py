"""The step-type plug-in API: a step type is a small class plus a registration.

A step type validates its ``config`` when a definition is saved (``config_model``
and ``check``) and runs in ``execute``, returning one outcome:

- ``Complete``: done, with an output; optionally choose among ``nextSteps``.
- ``Park``: wait durably until a time, a signal, or a wake-up (child execution).
- ``FanOut``: run bodies (parallel branches, map items) and join them.
- ``StartChild``: start a child execution and wait for its result.

Errors are raised as ``shared.errors.StepFailed`` (``retryable`` says whether the
step's retry policy may apply). Steps marked ``inline`` do no I/O and are chained
in the same invocation as their predecessor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.errors import Issue, WorkflowError
from shared.expressions import expression as compile_expr
from shared.expressions import render
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.models import JoinMark, StepRun, WorkflowDefinition, WorkflowExecution, WorkflowStep
    from shared.ports import ExecutionStore
    from shared.ports.checkpoints import CheckpointStore
    from shared.ports.secrets import SecretResolver


QUICK_STEP_SECONDS = 10.0
"""Time limit of steps that only record what comes next (park, fan out, start a child,
publish): their run is retried this soon after a worker died during it."""


class StepConfig(BaseModel):
    """Base of step configuration models: camelCase keys, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


@dataclass(frozen=True)
class Complete:
    output: Any = None
    next_steps: list[str] | None = None
    """Chosen successors; ``None`` means the step's own ``nextSteps``."""
    set_vars: dict[str, Any] | None = None
    """Variables to set on the execution."""


@dataclass(frozen=True)
class Park:
    until: datetime | None = None
    """Wake at this time (a durable timer); ``None`` waits for a signal or a child."""
    state: dict[str, Any] = field(default_factory=dict)
    signal: str | None = None
    """Name of the signal (event) that completes the step; checked again at commit."""
    pause: str | None = None
    """Pause the execution with this reason as the run parks (an operator resumes it;
    the run is then delivered again). Used by budgets that ask for a human decision."""


@dataclass(frozen=True)
class Body:
    """One parallel branch or map item: its start step and the context it sees."""

    index: int
    start_step: str
    context: dict[str, Any]


@dataclass(frozen=True)
class FanOut:
    total: int
    window: int
    """At most this many bodies run at once; body ``i + window`` starts when ``i`` ends."""
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StartChild:
    definition: WorkflowDefinition
    input: dict[str, Any]


Outcome = Complete | Park | FanOut | StartChild


@dataclass
class StepServices:
    """What step types may use besides the execution itself (wired by the composition
    root, ``shared.composition``)."""

    event_bus: Any = None
    workflows: Any = None
    http: Any = None
    """An ``HttpPolicy`` + client factory for http steps."""
    settings: Settings = field(default_factory=Settings.defaults)
    """The process's settings (an engine wired without them, in tests: the defaults)."""
    executions: ExecutionStore | None = None
    """The execution store, for step types that read history (AI routing, replays)."""
    secrets: SecretResolver | None = None
    """Resolves the secret references steps declare (http ``secrets``)."""
    checkpoints: CheckpointStore | None = None
    """Where agent steps keep their LangGraph checkpoints (``shared.ai.agent_run``)."""
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """Everything a step sees while it runs."""

    run: StepRun
    step: WorkflowStep
    definition: WorkflowDefinition
    execution: WorkflowExecution
    variables: dict[str, Any]
    now: datetime
    services: StepServices
    config: Any = None
    """The step's validated config model."""

    @property
    def env(self) -> dict[str, Any]:
        """The expression environment."""
        return {
            "vars": self.variables,
            "input": self.execution.input,
            "prev": self.run.context.get("prev"),
            "item": self.run.context.get("item"),
            "index": self.run.context.get("index"),
            "execution": {
                "id": self.execution.id,
                "workflowId": self.execution.workflow_id,
                "version": self.execution.workflow_version,
                "attempt": self.run.attempt,
                "runId": self.run.id,
            },
        }

    def render(self, value: Any) -> Any:
        """Substitute ``${...}`` templates in ``value``."""
        return render(value, self.env)

    def evaluate(self, source: str) -> Any:
        return compile_expr(source).evaluate(self.env)


class StepType:
    """Base class of step types. Subclasses set ``type_name`` and implement ``execute``."""

    type_name: ClassVar[str] = ""
    inline: ClassVar[bool] = False
    """No I/O and cheap: may run in the same invocation as the previous step."""
    branching: ClassVar[bool] = False
    """May list several ``nextSteps`` and choose among them."""
    config_model: ClassVar[type[StepConfig] | None] = None

    def inline_for(self, step: WorkflowStep) -> bool:
        """Whether this step (with its config) may run inline; a type whose I/O depends on
        its config (``decision`` with or without AI nodes) overrides this."""
        return self.inline

    def parse_config(self, config: Mapping[str, Any]) -> Any:
        if self.config_model is None:
            return dict(config)
        return self.config_model.model_validate(dict(config))

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        """Extra save-time checks (expressions, references); ``path`` is the step's pointer."""
        return []

    def time_limit(self, config: Any) -> float | None:
        """Most seconds one run may take by its config (an http call's ``timeoutSeconds``),
        or None: the step's own ``timeoutSeconds``, else the engine's default, bounds it.
        The run's lease follows it, so a dead worker's run is retried that much later."""
        return None

    def bodies(self, config: Any) -> list[str]:
        """Start steps of the bodies this step fans out to (parallel/map)."""
        return []

    def referenced_steps(self, config: Any) -> list[tuple[str, str]]:
        """Step ids named in config, with the JSON pointer suffix that names them."""
        return []

    async def execute(self, ctx: StepContext) -> Outcome:
        raise NotImplementedError

    def body(self, owner: StepRun, config: Any, index: int) -> Body:
        """The body with this index (fan-out types)."""
        raise WorkflowError(f"{self.type_name} does not fan out", code="INTERNAL")

    def join(self, owner: StepRun, config: Any, marks: list[JoinMark]) -> Complete:
        """Combine the finished bodies into the step's result (fan-out types)."""
        raise WorkflowError(f"{self.type_name} does not fan out", code="INTERNAL")

    def resume(self, ctx: StepContext, payload: Any) -> Outcome:
        """Called when a parked run is woken with a payload (signal or child result)."""
        return Complete(output=payload)


RESERVED_TYPES = {
    "decision": "the decision step type (LangGraph decision trees) is not installed yet",
    "llm": "the llm step type (model calls with tools) is not installed yet",
}


def step_config(step_type: StepType, definition: WorkflowDefinition, step: WorkflowStep) -> Any:
    """The parsed config of ``step``, parsed once per definition object."""
    cache = definition.parsed_configs
    if step.id not in cache:
        cache[step.id] = step_type.parse_config(step.config)
    return cache[step.id]


class StepRegistry:
    """Step types by name. ``decision`` and ``llm`` are reserved until registered."""

    def __init__(self) -> None:
        self._types: dict[str, StepType] = {}

    def register(self, step_type: StepType, *, replace: bool = False) -> None:
        name = step_type.type_name
        if not name:
            raise ValueError("step type needs a type_name")
        if name in self._types and not replace:
            raise ValueError(f"step type {name!r} is already registered")
        self._types[name] = step_type

    def get(self, name: str) -> StepType:
        try:
            return self._types[name]
        except KeyError:
            if name in RESERVED_TYPES:
                raise WorkflowError(RESERVED_TYPES[name], code="STEP_TYPE_UNAVAILABLE") from None
            raise WorkflowError(f"unknown step type {name!r}", code="UNKNOWN_STEP_TYPE") from None

    def names(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types
