"""Workflow definitions: the seed's WorkflowDefinition and WorkflowStep, extended."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from shared.models._base import ApiModel, utcnow


class ErrorStrategy(StrEnum):
    """What happens when a step fails for good (after its retries)."""

    FAIL = "fail"
    RETRY = "retry"
    CONTINUE = "continue"
    FALLBACK = "fallback"


class RetryPolicy(ApiModel):
    """Retry schedule of a step. Delays grow by ``multiplier`` up to ``max_delay_seconds``."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    """Total attempts including the first one."""
    initial_delay_seconds: float = Field(default=1.0, ge=0, le=86_400)
    """Delay before the second attempt."""
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    """Factor applied to the delay after each attempt."""
    max_delay_seconds: float = Field(default=300.0, ge=0, le=30 * 86_400)
    """Upper bound of any single delay."""
    jitter: float = Field(default=0.1, ge=0, le=1.0)
    """Fraction of the delay randomised (deterministically per step run) to spread retries."""
    retry_on: list[str] | None = None
    """Error codes that may be retried; ``None`` retries every retryable error."""


class ErrorHandling(ApiModel):
    """The seed's ``onError``: strategy, retry policy and fallback step."""

    strategy: ErrorStrategy = ErrorStrategy.FAIL
    """fail the execution, retry then fail, continue to nextSteps, or go to ``fallback_step``."""
    retry: RetryPolicy | None = None
    """Retry policy; applies to every strategy. ``strategy: retry`` without one uses defaults."""
    fallback_step: str | None = None
    """Step to run when the strategy is ``fallback``; it receives the error as ``prev``."""

    @model_validator(mode="after")
    def _fallback_needs_step(self) -> ErrorHandling:
        if self.strategy == ErrorStrategy.FALLBACK and not self.fallback_step:
            raise ValueError("strategy 'fallback' needs fallbackStep")
        return self

    def effective_retry(self) -> RetryPolicy | None:
        """The retry policy in force, with the defaults of ``strategy: retry``."""
        if self.retry is not None:
            return self.retry
        if self.strategy == ErrorStrategy.RETRY:
            return RetryPolicy()
        return None


class StepCondition(ApiModel):
    """A CEL guard: the step runs only when every condition is true, else it is skipped."""

    expression: str = Field(min_length=1, max_length=4096)
    description: str | None = None


class WorkflowStep(ApiModel):
    """One step of a workflow (the seed's WorkflowStep)."""

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
    """Unique id within the definition; used in nextSteps and expressions."""
    name: str = Field(default="", max_length=200)
    type: str = Field(min_length=1, max_length=64)
    """A registered step type: http, transform, branch, wait, wait_for_event, parallel, map,
    subworkflow, publish, decision, llm, or a custom one."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Type-specific configuration, validated by the step type."""
    conditions: list[StepCondition] | None = None
    next_steps: list[str] = Field(default_factory=list)
    """Possible next steps. Non-branching types take at most one."""
    on_error: ErrorHandling = Field(default_factory=ErrorHandling)
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    """Time limit of one attempt of this step (waits have their own limits)."""
    max_iterations: int | None = Field(default=None, ge=1, le=10_000)
    """Visits allowed to this step in one scope; bounds loops that pass through it."""
    output_var: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    """Store the step's output in ``vars.<output_var>``."""
    concurrency: StepConcurrencySpec | None = None
    """At most ``limit`` runs of this step executing at once (per key value, tenant-wide
    when a key is given); others wait ``scheduled`` (``docs/flow-control-start-controls.md``)."""
    rate_limit: StepRateLimitSpec | None = None
    """At most ``limit`` runs of this step starting in any ``period`` (per key value)."""


class TriggerKind(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    EVENT = "event"
    WEBHOOK = "webhook"


def _tag_required(schema: dict[str, Any]) -> None:
    """The JSON schema says what the discriminator needs: ``type`` is required."""
    required = schema.setdefault("required", [])
    if "type" not in required:
        required.insert(0, "type")


class _Trigger(ApiModel):
    model_config = ConfigDict(**ApiModel.model_config, json_schema_extra=_tag_required)


class ManualTrigger(_Trigger):
    type: Literal["manual"] = "manual"


class ScheduleTrigger(_Trigger):
    type: Literal["schedule"] = "schedule"
    cron: str = Field(min_length=1, max_length=200)
    """Five-field cron expression."""
    timezone: str = "UTC"
    input: dict[str, Any] = Field(default_factory=dict)


class EventTrigger(_Trigger):
    type: Literal["event"] = "event"
    topic: str = Field(min_length=1, max_length=255)
    filter: str | None = Field(default=None, max_length=4096)
    """CEL over ``attributes`` and ``data`` of the message."""


class WebhookTrigger(_Trigger):
    type: Literal["webhook"] = "webhook"
    secret_ref: str = Field(min_length=1, max_length=512)
    """Reference to the HMAC secret (a Secret Manager name, or ``env:VAR`` locally)."""


WorkflowTrigger = Annotated[
    ManualTrigger | ScheduleTrigger | EventTrigger | WebhookTrigger, Field(discriminator="type")
]


class DecisionBranchStats(ApiModel):
    """Outcomes of the finished executions in which a decision step chose one branch."""

    count: int = 0
    """Times the branch was chosen (a step visited twice in one execution counts twice)."""
    succeeded: int = 0
    """Of those, how many were in executions that ended ``succeeded``."""
    failed: int = 0
    """...and how many in executions that ended failed, cancelled or timed out."""
    success_rate: float | None = None
    mean_duration_ms: float | None = None
    """Mean duration of those executions."""
    mean_cost_usd: float | None = None
    """Mean model cost of those executions (token accounting of AI steps)."""


class ExecutionStats(ApiModel):
    """Counts and durations of a workflow's latest executions (``window`` of them)."""

    total: int = 0
    """Executions counted: all of them, or ``window`` when there are more."""
    window: int = 0
    """The most executions counted (the latest ones): 1,000 for one workflow, 100 in a
    listing."""
    by_status: dict[str, int] = Field(default_factory=dict)
    duration_p50_ms: float | None = None
    duration_p95_ms: float | None = None
    duration_p99_ms: float | None = None
    last_error: str | None = None
    decision_stats: dict[str, dict[str, DecisionBranchStats]] | None = None
    """Per decision step id, per chosen next step: outcomes over the latest finished
    executions (what the history router learns from). Absent without decision steps."""


_READ_ONLY: dict[str, Any] = {"readOnly": True}
"""Server fields: in every response, ignored in a request (``WorkflowApp`` drops them)."""


class ConcurrencyScope(StrEnum):
    WORKFLOW = "workflow"
    """Executions of this workflow share the key's slots."""
    TENANT = "tenant"
    """Every workflow of the tenant naming the same key value shares its slots."""


MAX_CONCURRENCY_LIMIT = 1000
MAX_CONCURRENCY_ENTRIES = 2


class ConcurrencySpec(ApiModel):
    """At most ``limit`` active executions per value of ``key`` (``docs/flow-control.md``)."""

    limit: int = Field(ge=1, le=MAX_CONCURRENCY_LIMIT)
    key: str | None = Field(default=None, max_length=1024)
    """CEL over ``input`` and ``trigger`` (string or number); absent = one shared key."""
    scope: ConcurrencyScope = ConcurrencyScope.WORKFLOW


MAX_START_LIMIT = 10_000
"""Starts per period of a ``throttle`` (and its burst)."""
MAX_RATE_LIMIT = 1000
"""Starts per period of a ``rateLimit`` (its window stores one time per start)."""
MIN_PERIOD_SECONDS = 1.0
MAX_PERIOD_SECONDS = 7 * 86_400.0
"""Bounds of a start control's ``period`` (a week)."""
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def _seconds(value: Any) -> Any:
    """A period as seconds: a number, a numeric string, or ``90s``/``5m``/``1h``/``1d``."""
    if isinstance(value, str):
        text = value.strip().lower()
        unit = _UNITS.get(text[-1:]) if text else None
        number = text[:-1] if unit is not None else text
        try:
            return float(number) * (unit or 1.0)
        except ValueError:
            raise ValueError(
                "a period is seconds (a number) or a number with s, m, h or d (5m)"
            ) from None
    return value


Period = Annotated[
    float,
    BeforeValidator(_seconds),
    Field(ge=MIN_PERIOD_SECONDS, le=MAX_PERIOD_SECONDS),
]
"""Seconds, from 1 to a week; written as a number (``60``) or with a unit (``"1m"``)."""


MAX_STEP_CONCURRENCY = 10_000
"""Slots of a step-level ``concurrency`` (a claim reads its key's slot documents)."""


class StepConcurrencySpec(ApiModel):
    """At most ``limit`` runs executing at once per value of ``key``, across executions."""

    limit: int = Field(ge=1, le=MAX_STEP_CONCURRENCY)
    key: str | None = Field(default=None, max_length=1024)
    """CEL over ``input``, ``vars`` and ``trigger`` (string or number): the slots are the
    tenant's, shared by every step naming the same value; absent = this step's own."""


class StepRateLimitSpec(ApiModel):
    """At most ``limit`` runs starting in any ``period`` seconds per value of ``key``."""

    limit: int = Field(ge=1, le=MAX_RATE_LIMIT)
    period: Period
    key: str | None = Field(default=None, max_length=1024)
    """CEL over ``input``, ``vars`` and ``trigger``; absent = this step's own window."""


class SingletonMode(StrEnum):
    SKIP = "skip"
    """A start while one is live does not create an execution; it answers the live one."""
    CANCEL_RUNNING = "cancelRunning"
    """The live one is cancelled and the new one starts."""


class SingletonSpec(ApiModel):
    """At most one live (queued or running) execution per value of ``key``."""

    key: str | None = Field(default=None, max_length=1024)
    """CEL over ``input`` and ``trigger``; absent = one execution of the workflow."""
    mode: SingletonMode = SingletonMode.SKIP


class RateLimitMode(StrEnum):
    REFUSE = "refuse"
    """An excess start is refused with ``RATE_LIMITED`` (429 with ``Retry-After``)."""
    QUEUE = "queue"
    """An excess start is stored ``queued`` and starts when the window allows it."""


class RateLimitSpec(ApiModel):
    """At most ``limit`` starts in any ``period`` seconds per value of ``key``."""

    limit: int = Field(ge=1, le=MAX_RATE_LIMIT)
    period: Period
    key: str | None = Field(default=None, max_length=1024)
    """CEL over ``input`` and ``trigger``; absent = one window for the workflow."""
    mode: RateLimitMode = RateLimitMode.REFUSE


class ThrottleSpec(ApiModel):
    """Starts spread to ``limit`` per ``period`` per key (GCRA); excess ones wait, queued."""

    limit: int = Field(ge=1, le=MAX_START_LIMIT)
    period: Period
    key: str | None = Field(default=None, max_length=1024)
    """CEL over ``input`` and ``trigger``; absent = one throttle for the workflow."""
    burst: int | None = Field(default=None, ge=1, le=MAX_START_LIMIT)
    """Starts that may go at once after a quiet time; defaults to ``limit``."""


class DebounceSpec(ApiModel):
    """Only the last start of a burst runs, ``period`` seconds after it, with its input."""

    period: Period
    key: str | None = Field(default=None, max_length=1024)
    """CEL over ``input`` and ``trigger``; absent = one debounce for the workflow."""


class WorkflowDefinition(ApiModel):
    """A workflow as stored: the seed's WorkflowDefinition plus start step and limits."""

    id: str = Field(default="", json_schema_extra=_READ_ONLY)
    """UUID, assigned on create."""
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    version: int = Field(default=1, json_schema_extra=_READ_ONLY)
    is_active: StrictBool = True
    """Whether triggers start it (true or false: 0, 1 or "yes" are refused)."""
    trigger: WorkflowTrigger = Field(default_factory=ManualTrigger)
    steps: list[WorkflowStep] = Field(min_length=1)
    variables: dict[str, Any] = Field(default_factory=dict)
    """Initial execution variables; the execution input is merged over them."""
    owner: str = Field(default="", json_schema_extra=_READ_ONLY)
    tags: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow, json_schema_extra=_READ_ONLY)
    updated_at: datetime = Field(default_factory=utcnow, json_schema_extra=_READ_ONLY)
    last_executed: datetime | None = Field(default=None, json_schema_extra=_READ_ONLY)
    execution_stats: ExecutionStats = Field(
        default_factory=ExecutionStats, json_schema_extra=_READ_ONLY
    )
    start_step: str | None = None
    """First step; defaults to the first entry of ``steps``."""
    timeout_seconds: float | None = Field(default=None, gt=0, le=365 * 86_400)
    """Time limit of a whole execution; it ends ``timed_out`` when exceeded."""
    output: Any = None
    """Template of the execution result (``${...}`` expressions); defaults to the last output."""
    concurrency: list[ConcurrencySpec] = Field(
        default_factory=list, max_length=MAX_CONCURRENCY_ENTRIES
    )
    """Concurrency limits: excess executions wait in the ``queued`` status."""
    priority: str | None = Field(default=None, max_length=1024)
    """CEL over ``input`` and ``trigger`` (int): higher leaves the queue first."""
    singleton: SingletonSpec | None = None
    """One live execution per key: further starts are skipped or cancel the live one."""
    rate_limit: RateLimitSpec | None = None
    """Starts per period per key; excess ones are refused or queued."""
    throttle: ThrottleSpec | None = None
    """Starts per period per key, smoothed; excess ones wait queued, never dropped."""
    debounce: DebounceSpec | None = None
    """Starts within ``period`` of each other collapse into the last one."""

    @cached_property
    def step_index(self) -> dict[str, WorkflowStep]:
        """Steps by id (computed once; definitions are immutable once stored)."""
        return {step.id: step for step in self.steps}

    @cached_property
    def parsed_configs(self) -> dict[str, Any]:
        """Step configs as their step types parsed them (filled by the engine; a stored
        definition never changes, so each config is parsed once per process)."""
        return {}

    @cached_property
    def cyclic_steps(self) -> frozenset[str]:
        """Steps on a cycle: only they can be visited twice in one scope (loops)."""
        from shared.models._graph import cyclic_nodes

        edges = {
            step.id: [*step.next_steps, *filter(None, [step.on_error.fallback_step])]
            for step in self.steps
        }
        return cyclic_nodes(edges)

    def step(self, step_id: str) -> WorkflowStep:
        """The step with this id (KeyError if absent)."""
        return self.step_index[step_id]

    def first_step(self) -> str:
        return self.start_step or self.steps[0].id
