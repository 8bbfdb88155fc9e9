"""The step registry every runtime starts from."""

from __future__ import annotations

from shared.engine.steps import StepRegistry
from shared.steps import default_registry

__all__ = ["build_registry"]


def build_registry() -> StepRegistry:
    """Built-in step types, plus ``decision`` and ``llm`` registered by the AI package."""
    from shared.ai import register_ai_steps

    return register_ai_steps(default_registry())
