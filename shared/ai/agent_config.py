"""Configuration of ``agent`` steps and their save-time checks.

An agent's config is an llm step's config (``LlmConfig``: system, prompt, model,
tools, memory, maxToolCalls, budget, outputSchema...) whose ``tools`` entries may also
be objects naming a tool that needs a person's approval before each call::

    tools: [read_variables, {name: publish_message, requiresApproval: true}]

The llm checks run on the same config seen with plain tool names (``llm_view``), so
the allow-list, side-effect and host/topic rules are the llm step's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from shared.ai.llm_config import TOOLS, LlmConfig, check_llm
from shared.engine.steps import StepConfig
from shared.errors import Issue

if TYPE_CHECKING:
    from shared.settings import Settings

ON_REJECT = ("continue", "fail")


class AgentTool(StepConfig):
    """A tool of the allow-list, with how its calls are approved."""

    name: str = Field(min_length=1, max_length=64)
    requires_approval: bool = False
    """Each call waits for a person to approve (optionally with edited args) or reject it."""


class AgentConfig(LlmConfig):
    tools: list[str | AgentTool] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=len(TOOLS)
    )
    """Tools the model may call: names from the allow-list, or ``{name,
    requiresApproval}`` objects."""
    on_reject: Literal["continue", "fail"] = "continue"
    """A rejected call: ``continue`` tells the model ("rejected by <who>: <reason>") and
    goes on; ``fail`` fails the step with TOOL_CALL_REJECTED."""
    approval_timeout_seconds: float = Field(default=7 * 86_400, gt=0, le=365 * 86_400)
    """A proposed call nobody answers within this fails the step (APPROVAL_TIMEOUT)."""
    answered_by: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=50
    )
    """Principals (subjects) who may approve or reject this step's calls; anyone else
    gets 403 EVENT_SENDER_NOT_ALLOWED. Unset: anyone with the operate role."""

    def tool_names(self) -> list[str]:
        return [t if isinstance(t, str) else t.name for t in self.tools]

    def approval_tools(self) -> frozenset[str]:
        """The tools whose calls wait for an approval."""
        return frozenset(
            t.name for t in self.tools if isinstance(t, AgentTool) and t.requires_approval
        )

    def llm_view(self) -> LlmConfig:
        """The same config as an llm step sees it (plain tool names)."""
        fields = {name: value for name, value in self if name in LlmConfig.model_fields}
        fields["tools"] = self.tool_names()
        return LlmConfig.model_construct(**fields)


def check_agent(
    config: AgentConfig,
    path: str,
    settings: Settings | None = None,
    *,
    has_fallback: bool = False,
) -> list[Issue]:
    """Save-time problems of an agent config; ``path`` points at the step's ``config``.
    ``settings`` and ``has_fallback`` as for ``check_llm`` (models under a cost limit,
    guardrails that fall back)."""
    issues = check_llm(config.llm_view(), path, settings, has_fallback=has_fallback)
    for index, tool in enumerate(config.tools):
        if isinstance(tool, AgentTool) and tool.requires_approval and tool.name not in TOOLS:
            issues.append(
                Issue(
                    "APPROVAL_FOR_UNKNOWN_TOOL",
                    f"requiresApproval is set on {tool.name!r}, which is not an allowed tool",
                    f"{path}/tools/{index}/requiresApproval",
                )
            )
    if config.on_reject == "fail" and not config.approval_tools():
        issues.append(
            Issue(
                "NO_TOOL_REQUIRES_APPROVAL",
                "onReject applies to calls that need approval: no tool has requiresApproval",
                f"{path}/onReject",
            )
        )
    return issues
