"""Token and cost accounting of model calls, per step run and per execution, and budgets.

A step run keeps what its model calls used in ``state.aiUsage`` (durable with the run);
an execution's usage is the sum over its step visits (the last attempt of each
idempotency key: a retry that replays recorded turns does not count them twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from shared.engine.steps import StepConfig
from shared.errors import StepFailed
from shared.models import StepRun
from shared.settings import Settings

USAGE_KEY = "aiUsage"


@dataclass
class Usage:
    """Tokens and cost of model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    """Model answers counted (live, replayed or from a recording)."""
    live_calls: int = 0
    """Of those, real calls to the model."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            round(self.cost_usd + other.cost_usd, 8),
            self.calls + other.calls,
            self.live_calls + other.live_calls,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.tokens,
            "costUsd": round(self.cost_usd, 8),
            "calls": self.calls,
            "liveCalls": self.live_calls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage:
        data = data or {}
        return cls(
            int(data.get("inputTokens", 0)),
            int(data.get("outputTokens", 0)),
            float(data.get("costUsd", 0.0)),
            int(data.get("calls", 0)),
            int(data.get("liveCalls", 0)),
        )


def turn_usage(
    usage: Mapping[str, Any] | None,
    model: str,
    prices: Mapping[str, tuple[float, float]],
    *,
    live: bool,
) -> Usage:
    """The usage of one model answer, priced from the table (USD per million tokens)."""
    usage = usage or {}
    inp = int(usage.get("inputTokens", usage.get("input_tokens", 0)) or 0)
    out = int(usage.get("outputTokens", usage.get("output_tokens", 0)) or 0)
    # Unpriced models count as free only where no cost budget applies: the budget
    # checks call ``require_price`` first (an unpriced model is refused there).
    price_in, price_out = prices.get(model, (0.0, 0.0))
    cost = (inp * price_in + out * price_out) / 1_000_000
    return Usage(inp, out, cost, 1, 1 if live else 0)


def execution_usage(runs: Iterable[StepRun], exclude_key: str = "") -> Usage:
    """What an execution's model calls used, from its runs (last attempt per visit)."""
    latest: dict[str, StepRun] = {}
    for run in runs:
        if USAGE_KEY not in run.state or run.idempotency_key == exclude_key:
            continue
        key = run.idempotency_key or run.id
        if key not in latest or run.attempt >= latest[key].attempt:
            latest[key] = run
    total = Usage()
    for run in latest.values():
        total = total.add(Usage.from_dict(run.state[USAGE_KEY]))
    return total


class Budget(StepConfig):
    """Limits of model use; unset execution limits take the settings' defaults."""

    max_tokens: int | None = Field(default=None, ge=1)
    """Tokens this step may use (input + output, every model turn)."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    execution_max_tokens: int | None = Field(default=None, ge=1)
    """Tokens the whole execution may use, this step included."""
    execution_max_cost_usd: float | None = Field(default=None, gt=0)
    on_exceeded: Literal["fail", "pause"] = "fail"
    """``fail``: the step fails with BUDGET_EXCEEDED. ``pause``: the execution pauses;
    resuming it approves going over the budget for this step run."""


@dataclass
class BudgetGuard:
    """Checks a step's and its execution's usage against their limits."""

    budget: Budget
    execution_before: Usage
    """What the execution used before this step run."""
    execution_max_tokens: int | None = None
    execution_max_cost_usd: float | None = None
    approved: bool = False
    """An operator resumed the execution after a budget pause: limits no longer apply."""

    def exceeded(self, step: Usage, *, before_call: bool = False) -> str | None:
        """Why a limit is exceeded (or, before a call, already reached), else None."""
        if self.approved:
            return None
        total = self.execution_before.add(step)
        checks = [
            (self.budget.max_tokens, step.tokens, "step tokens"),
            (self.budget.max_cost_usd, step.cost_usd, "step cost USD"),
            (self.execution_max_tokens, total.tokens, "execution tokens"),
            (self.execution_max_cost_usd, total.cost_usd, "execution cost USD"),
        ]
        for limit, used, what in checks:
            if limit is not None and (used >= limit if before_call else used > limit):
                return f"{what}: used {round(used, 6)} of {limit}"
        return None

    @property
    def limits_cost(self) -> bool:
        """A cost limit applies to this step run (its own or its execution's)."""
        return self.budget.max_cost_usd is not None or self.execution_max_cost_usd is not None

    def require_price(self, model: str, prices: Mapping[str, tuple[float, float]]) -> None:
        """Raise ModelUnpriced when a cost limit applies and ``model`` has no price.

        Checked even after an operator approved going over the budget: an unpriced
        model's cost is unknown, not zero.
        """
        if self.limits_cost:
            require_price(model, prices)


def require_price(model: str, prices: Mapping[str, tuple[float, float]]) -> None:
    """Raise ModelUnpriced unless ``model`` has a price (``ai.prices``)."""
    if model not in prices:
        raise ModelUnpriced(
            f"model {model!r} has no price in ai.prices (WFE_AI_PRICES) and a cost budget "
            "is set: its cost cannot be counted",
            details={"model": model},
        )


class BudgetExceeded(StepFailed):
    """A budget ran out; the step fails or pauses the execution (``Budget.on_exceeded``)."""

    code = "BUDGET_EXCEEDED"
    retryable = False


class ModelUnpriced(StepFailed):
    """A cost budget is set and the model has no price: refused before any call."""

    code = "MODEL_UNPRICED"
    retryable = False


def guard_for(
    budget: Budget, settings: Settings, execution_before: Usage, approved: bool
) -> BudgetGuard:
    """The guard of a step run: its budget over the settings' execution defaults."""
    return BudgetGuard(
        budget,
        execution_before,
        budget.execution_max_tokens or settings.ai.execution_max_tokens,
        budget.execution_max_cost_usd or settings.ai.execution_max_cost_usd,
        approved,
    )
