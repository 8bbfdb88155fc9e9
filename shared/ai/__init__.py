"""AI steps: ``decision`` (LangGraph decision trees with AI and history routing) and
``llm`` (model calls with tools, structured output, memory, budgets and replay) and
``agent`` (a tool-calling loop with durable LangGraph checkpoints and approvals).

The engine never imports this package: bootstrap registers the step types into the
engine's registry (``register_ai_steps``), and the app renders decision graphs and
decision statistics through it. See ``docs/ai.md``.
"""

from __future__ import annotations

from shared.ai.agent_step import AgentStep
from shared.ai.decision_step import DecisionStep
from shared.ai.llm_step import LlmStep
from shared.ai.mermaid import render_mermaid
from shared.ai.models import (
    ModelError,
    ModelProvider,
    NoModelProvider,
    StaticModelProvider,
    build_model_provider,
)
from shared.ai.services import AiDependencies, AiServices
from shared.engine.steps import StepRegistry


def register_ai_steps(
    registry: StepRegistry, deps: AiDependencies | None = None, *, replace: bool = False
) -> StepRegistry:
    """Register ``decision``, ``llm`` and ``agent`` (sharing one ``AiServices``) into
    ``registry``."""
    services = AiServices(deps or AiDependencies())
    registry.register(DecisionStep(services), replace=replace)
    registry.register(LlmStep(services), replace=replace)
    registry.register(AgentStep(services), replace=replace)
    return registry


__all__ = [
    "AgentStep",
    "AiDependencies",
    "AiServices",
    "DecisionStep",
    "LlmStep",
    "ModelError",
    "ModelProvider",
    "NoModelProvider",
    "StaticModelProvider",
    "build_model_provider",
    "register_ai_steps",
    "render_mermaid",
]
