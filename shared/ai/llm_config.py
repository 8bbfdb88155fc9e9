"""Configuration of ``llm`` steps and their save-time checks."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.ai.accounting import Budget
from shared.ai.models import ModelOptions
from shared.ai.schema import check_schema
from shared.engine.steps import StepConfig
from shared.errors import Issue
from shared.expressions import check_template

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


def check_llm(config: LlmConfig, path: str) -> list[Issue]:
    """Save-time problems of an llm config; ``path`` points at the step's ``config``."""
    issues = check_template(config.prompt, f"{path}/prompt")
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
