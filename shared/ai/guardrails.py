"""Guardrails on a step's answer: their configuration and save-time checks.

A ``guardrails`` block lists validators (a JSON Schema subset, a CEL predicate over
``output``, a model-graded rubric) and what happens when one fails (``onFail``):
``retry`` asks the model again with the failed verdicts as feedback (up to
``maxRetries``, then ``then``), ``fallback`` fails the step with GUARDRAIL_FAILED for
its ``onError: {strategy: fallback, fallbackStep}`` to take, ``escalate``
waits for a person's decision (event ``guardrail.<step id>``), ``continue`` records
and goes on, ``fail`` fails the step with GUARDRAIL_FAILED. The run lives in
``shared.ai.guardrails_run``; see docs/ai.md, "Guardrails and evaluations".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from shared.ai.models import ModelOptions
from shared.ai.schema import check_schema
from shared.engine.steps import StepConfig
from shared.errors import Issue
from shared.expressions import STEP_ROOTS, compile_expression

GUARDRAIL_ROOTS = STEP_ROOTS | {"output"}
"""What a guardrail's CEL predicate sees: the step's roots plus its answer."""
MAX_ESCALATION_SECONDS = 30 * 86_400
Action = Literal["retry", "fallback", "escalate", "continue", "fail"]
Then = Literal["fallback", "escalate", "continue", "fail"]


def model_options(value: Any) -> Any:
    """``model: "fast"`` is short for ``model: {model: fast}`` (a name or an alias)."""
    return {"model": value} if isinstance(value, str) else value


class GuardrailValidator(StepConfig):
    """One check of the answer: exactly one of ``schema``, ``cel``, ``rubric``."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
    """How verdicts and the per-workflow aggregate name it (default ``<kind><index>``)."""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    cel: str | None = None
    """A CEL predicate over ``output`` (the answer) and the step's roots: true passes."""
    rubric: str | None = Field(default=None, min_length=1, max_length=4000)
    """What a judge model grades (score 0..1); passes at ``minScore``."""
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    model: ModelOptions | None = None
    """The judge (a model name or alias; default: the settings' model)."""
    message: str | None = Field(default=None, max_length=500)
    """Feedback given when it fails (default: what the check found)."""

    @field_validator("model", mode="before")
    @classmethod
    def _short_model(cls, value: Any) -> Any:
        return model_options(value)

    @property
    def kind(self) -> str:
        if self.schema_ is not None:
            return "schema"
        return "cel" if self.cel is not None else "rubric"

    def label(self, index: int) -> str:
        return self.name or f"{self.kind}{index}"


class Guardrails(StepConfig):
    validators: list[GuardrailValidator] = Field(min_length=1, max_length=20)
    on_fail: Action = "escalate"
    then: Then = "escalate"
    """After ``maxRetries`` retries that still fail (``onFail: retry`` only)."""
    max_retries: int = Field(default=2, ge=0, le=5)
    escalate_timeout_seconds: float = Field(default=7 * 86_400, gt=0, le=MAX_ESCALATION_SECONDS)
    """How long an escalation waits for a decision; then the step fails GUARDRAIL_TIMEOUT."""
    answered_by: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=50
    )
    """Principals (subjects) who may accept or reject an escalated answer; anyone else
    gets 403 EVENT_SENDER_NOT_ALLOWED. Unset: anyone with the operate role."""

    def final_action(self) -> str:
        """What a failure finally does (after the retries of ``onFail: retry``)."""
        return self.then if self.on_fail == "retry" else self.on_fail

    def needs_model(self) -> bool:
        return any(v.rubric is not None for v in self.validators)


def check_guardrails(
    guardrails: Guardrails,
    path: str,
    *,
    priced: Mapping[str, Any] | None = None,
    aliases: Mapping[str, str] | None = None,
    default_model: str = "",
    has_fallback: bool = False,
) -> list[Issue]:
    """Save-time problems of a guardrails block; ``path`` points at it. With ``priced``
    (a cost limit applies), a rubric's judge must be a known (priced) model or alias."""
    issues: list[Issue] = []
    step_path = path.rsplit("/config/", 1)[0]
    for index, validator in enumerate(guardrails.validators):
        at = f"{path}/validators/{index}"
        given = (validator.schema_, validator.cel, validator.rubric)
        kinds = [value for value in given if value is not None]
        if len(kinds) != 1:
            issues.append(
                Issue(
                    "GUARDRAIL_VALIDATOR_KIND",
                    "a validator has exactly one of schema, cel, rubric",
                    at,
                )
            )
            continue
        if validator.schema_ is not None:
            issues += check_schema(validator.schema_, f"{at}/schema")
        elif validator.cel is not None:
            issues += compile_expression(validator.cel, f"{at}/cel", GUARDRAIL_ROOTS)[1]
        elif priced is not None:
            name = (validator.model.model if validator.model else None) or default_model
            issues += check_model_known(name, f"{at}/model", priced, aliases or {})
    if guardrails.final_action() == "fallback" and not has_fallback:
        issues.append(
            Issue(
                "GUARDRAIL_FALLBACK_REQUIRED",
                "falling back needs the step's onError: {strategy: fallback, fallbackStep}",
                step_path + "/onError",
            )
        )
    labels = [v.label(i) for i, v in enumerate(guardrails.validators)]
    for index, label in enumerate(labels):
        if label in labels[:index]:
            issues.append(
                Issue(
                    "GUARDRAIL_DUPLICATE_NAME",
                    f"two validators are named {label!r}",
                    f"{path}/validators/{index}/name",
                )
            )
    return issues


def check_model_known(
    name: str, path: str, priced: Mapping[str, Any], aliases: Mapping[str, str]
) -> list[Issue]:
    """MODEL_UNKNOWN unless ``name`` (or the model its alias names) has a price."""
    target = aliases.get(name, name)
    if target in priced:
        return []
    via = f" (alias of {target!r})" if target != name else ""
    return [
        Issue(
            "MODEL_UNKNOWN",
            f"model {name!r}{via} is neither priced (WFE_AI_PRICES) nor an alias of a priced "
            f"model (WFE_AI_MODEL_ALIASES): a cost budget cannot count it",
            path,
        )
    ]


__all__ = [
    "GUARDRAIL_ROOTS",
    "GuardrailValidator",
    "Guardrails",
    "check_guardrails",
    "check_model_known",
    "model_options",
]
