"""``wait`` (durable sleep or until a time) and ``wait_for_event`` (signal with timeout)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, model_validator

from shared.engine.steps import (
    QUICK_STEP_SECONDS,
    Complete,
    Outcome,
    Park,
    StepConfig,
    StepContext,
    StepType,
)
from shared.errors import Issue, StepFailed
from shared.expressions import check_template
from shared.models import WorkflowStep

MAX_WAIT_SECONDS = 365 * 86_400
_WHOLE_TEMPLATE = re.compile(r"\$\{.+\}", re.DOTALL)


class WaitConfig(StepConfig):
    seconds: float | str | None = None
    """Duration (number or ``${expr}``)."""
    until: str | None = None
    """RFC 3339 time (or ``${expr}`` giving one)."""

    @model_validator(mode="after")
    def _one_of(self) -> WaitConfig:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of 'seconds' or 'until'")
        if isinstance(self.seconds, (int, float)) and not 0 <= self.seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"'seconds' must be between 0 and {MAX_WAIT_SECONDS}")
        return self


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise StepFailed(
                f"'until' is not an RFC 3339 time: {value!r}", code="INVALID_TIME", retryable=False
            ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class WaitStep(StepType):
    type_name = "wait"
    config_model = WaitConfig

    def time_limit(self, config: Any) -> float | None:
        return QUICK_STEP_SECONDS  # it only records what comes next

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        where = f"{path}/config"
        issues = check_template({"seconds": config.seconds, "until": config.until}, where)
        seconds, until = config.seconds, config.until
        if isinstance(seconds, str) and not _WHOLE_TEMPLATE.fullmatch(seconds.strip()):
            try:
                number = float(seconds)
            except ValueError:
                number = -1.0
            if not 0 <= number <= MAX_WAIT_SECONDS:
                issues.append(
                    Issue(
                        "WAIT_SECONDS_INVALID",
                        f"'seconds' is a number of seconds (0 to {MAX_WAIT_SECONDS}) or a "
                        "${...} template giving one",
                        f"{where}/seconds",
                    )
                )
        if isinstance(until, str) and "${" not in until:
            try:
                _parse_time(until)
            except StepFailed as exc:
                issues.append(Issue(exc.code, exc.message, f"{where}/until"))
        return issues

    async def execute(self, ctx: StepContext) -> Outcome:
        target_text = ctx.run.state.get("until")
        if target_text is None:
            if ctx.config.until is not None:
                target = _parse_time(ctx.render(ctx.config.until))
            else:
                seconds = ctx.render(ctx.config.seconds)
                if not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_WAIT_SECONDS:
                    raise StepFailed(
                        f"wait seconds must be a number in [0, {MAX_WAIT_SECONDS}]",
                        code="INVALID_DURATION",
                        retryable=False,
                    )
                target = ctx.now + timedelta(seconds=float(seconds))
        else:
            target = _parse_time(target_text)
        if ctx.now >= target:
            return Complete(output={"waitedUntil": target.isoformat()})
        return Park(until=target, state={"until": target.isoformat()})


class WaitForEventConfig(StepConfig):
    event: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")
    """Name of the event (signal) to wait for."""
    timeout_seconds: float = Field(gt=0, le=MAX_WAIT_SECONDS)
    """After this, the step fails with EVENT_TIMEOUT (handle it with onError)."""
    answered_by: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=50
    )
    """Principals (their subjects: an API key's name, a Google account's email) who may
    send this event; anyone else gets 403 EVENT_SENDER_NOT_ALLOWED, on top of the
    operate role the events endpoint needs. Unset: anyone with that role."""


class WaitForEventStep(StepType):
    type_name = "wait_for_event"
    config_model = WaitForEventConfig

    def time_limit(self, config: Any) -> float | None:
        return QUICK_STEP_SECONDS  # it only records what comes next

    async def execute(self, ctx: StepContext) -> Outcome:
        deadline_text = ctx.run.state.get("deadline")
        if deadline_text is None:
            deadline = ctx.now + timedelta(seconds=ctx.config.timeout_seconds)
        else:
            deadline = _parse_time(deadline_text)
            if ctx.now >= deadline:
                raise StepFailed(
                    f"no {ctx.config.event!r} event within {ctx.config.timeout_seconds}s",
                    code="EVENT_TIMEOUT",
                    retryable=False,
                )
        return Park(
            until=deadline, state={"deadline": deadline.isoformat()}, signal=ctx.config.event
        )

    def resume(self, ctx: StepContext, payload: Any) -> Outcome:
        output = {"event": ctx.config.event, "payload": payload.get("value")}
        if isinstance(payload.get("sender"), str):
            output["sentBy"] = payload["sender"]  # the authenticated sender, for the record
        return Complete(output=output)
