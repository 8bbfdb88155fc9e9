"""Configuration of ``llm`` steps and their save-time checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from shared.ai.accounting import Budget
from shared.ai.guardrails import Guardrails, check_guardrails, check_model_known, model_options
from shared.ai.models import ModelOptions, ModelSpec, resolve_spec
from shared.ai.schema import check_schema
from shared.engine.steps import StepConfig
from shared.errors import Issue
from shared.expressions import check_template

if TYPE_CHECKING:
    from shared.settings import Settings

READ_ONLY_TOOLS = {
    "read_variables": "the execution's variables (all, or the names asked for)",
    "step_history": "the execution's step history: status and output of each step run",
    "http_fetch": "GET an https URL on one of the step's fetchHosts (egress policy applies)",
}
SIDE_EFFECT_TOOLS = {
    "set_variable": "set an execution variable (applied when the step completes)",
    "publish_message": "publish a message on the event bus (Pub/Sub in the cloud)",
}
TOOLS = {**READ_ONLY_TOOLS, **SIDE_EFFECT_TOOLS}


class MemoryOptions(StepConfig):
    """Conversation memory shared by the llm steps of one execution that use its key."""

    key: str = Field(default="default", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    max_messages: int = Field(default=20, ge=2, le=200)
    """Messages kept (the oldest are dropped)."""


class LlmConfig(StepConfig):
    prompt: str = Field(min_length=1, max_length=50_000)
    """``${...}`` template over the execution's variables (the step's expression roots)."""
    system: str | None = Field(default=None, max_length=50_000)
    """System instructions (a template too)."""
    model: ModelOptions | None = None
    """``{model: ..., temperature: ...}``, or just a name: ``model: fast``; a name found in
    ``WFE_AI_MODEL_ALIASES`` is an alias of the model it maps to."""
    tools: list[str] = Field(default_factory=list, max_length=len(TOOLS))
    """Tools the model may call, from the allow-list (see ``TOOLS``)."""
    allow_side_effects: bool = False
    """Required for ``set_variable`` and ``publish_message``."""
    fetch_hosts: list[str] = Field(default_factory=list, max_length=50)
    """Hosts ``http_fetch`` may read (https only, and the engine's egress policy)."""
    publish_topics: list[str] = Field(default_factory=list, max_length=50)
    """Topics ``publish_message`` may publish to."""
    output_schema: dict[str, Any] | None = None
    """JSON schema of the answer: the model answers JSON, checked against it."""
    set_vars: bool = False
    """Set each top-level field of the structured answer as an execution variable."""
    memory: MemoryOptions | None = None
    max_tool_calls: int = Field(default=8, ge=0, le=100)
    max_repairs: int = Field(default=1, ge=0, le=3)
    """Times the model is asked again when its answer does not match the schema."""
    budget: Budget = Field(default_factory=Budget)
    guardrails: Guardrails | None = None
    """Validators of the answer and what a failure does (``shared.ai.guardrails``)."""

    @field_validator("model", mode="before")
    @classmethod
    def _short_model(cls, value: Any) -> Any:
        return model_options(value)


def with_alias(options: ModelOptions | None, settings: Settings) -> ModelOptions | None:
    """``options`` with an alias (``WFE_AI_MODEL_ALIASES``) replaced by its model."""
    aliases = settings.ai.model_aliases
    if options is None or options.model is None or options.model not in aliases:
        return options
    return options.model_copy(update={"model": aliases[options.model]})


def resolve_model(options: ModelOptions | None, settings: Settings) -> ModelSpec:
    """The model spec of a step or node: aliases resolved, then the settings' defaults."""
    return resolve_spec(with_alias(options, settings), settings)


def budgeted(config: LlmConfig, settings: Settings) -> bool:
    """Whether a cost limit applies to the step (its own or the settings'): then its
    models must be priced. A token limit counts an unpriced model's tokens as well."""
    budget = config.budget
    limits = (budget.max_cost_usd, budget.execution_max_cost_usd)
    return any(v is not None for v in (*limits, settings.ai.execution_max_cost_usd))


def check_llm(
    config: LlmConfig, path: str, settings: Settings | None = None, *, has_fallback: bool = False
) -> list[Issue]:
    """Save-time problems of an llm config; ``path`` points at the step's ``config``.
    With ``settings`` and a cost limit in force, unknown models and aliases are refused."""
    issues = check_template(config.prompt, f"{path}/prompt")
    if settings is not None and budgeted(config, settings):
        ai = settings.ai
        name = (config.model.model if config.model else None) or ai.model
        issues += check_model_known(name, f"{path}/model", ai.prices, ai.model_aliases)
    if config.guardrails is not None:
        priced = ai_prices(settings) if settings and budgeted(config, settings) else None
        issues += check_guardrails(
            config.guardrails,
            f"{path}/guardrails",
            priced=priced,
            aliases=settings.ai.model_aliases if settings else None,
            default_model=settings.ai.model if settings else "",
            has_fallback=has_fallback,
        )
    if config.system:
        issues += check_template(config.system, f"{path}/system")
    seen: set[str] = set()
    for index, name in enumerate(config.tools):
        at = f"{path}/tools/{index}"
        if name not in TOOLS:
            issues.append(
                Issue("UNKNOWN_TOOL", f"{name!r} is not an allowed tool: {sorted(TOOLS)}", at)
            )
        elif name in SIDE_EFFECT_TOOLS and not config.allow_side_effects:
            issues.append(
                Issue(
                    "TOOL_HAS_SIDE_EFFECTS",
                    f"{name!r} has side effects: set allowSideEffects: true to use it",
                    at,
                )
            )
        if name in seen:
            issues.append(Issue("DUPLICATE_TOOL", f"{name!r} is listed twice", at))
        seen.add(name)
    if "http_fetch" in config.tools and not config.fetch_hosts:
        issues.append(
            Issue("FETCH_HOSTS_REQUIRED", "http_fetch needs fetchHosts", f"{path}/fetchHosts")
        )
    if "publish_message" in config.tools and not config.publish_topics:
        issues.append(
            Issue(
                "PUBLISH_TOPICS_REQUIRED",
                "publish_message needs publishTopics",
                f"{path}/publishTopics",
            )
        )
    if config.output_schema is not None:
        issues += check_schema(config.output_schema, f"{path}/outputSchema")
        if config.set_vars and config.output_schema.get("type") != "object":
            issues.append(
                Issue("SET_VARS_NEEDS_OBJECT", "setVars needs an object schema", f"{path}/setVars")
            )
    elif config.set_vars:
        issues.append(
            Issue("SET_VARS_NEEDS_SCHEMA", "setVars needs an outputSchema", f"{path}/setVars")
        )
    return issues


def ai_prices(settings: Settings) -> dict[str, Any]:
    return dict(settings.ai.prices)
