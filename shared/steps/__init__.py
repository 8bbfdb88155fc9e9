"""Built-in step types. ``register_builtins`` puts them in a registry."""

from shared.engine.steps import StepRegistry
from shared.steps.branch import BranchStep
from shared.steps.control import MapStep, ParallelStep
from shared.steps.http import HttpStep
from shared.steps.messaging import PublishStep, SubworkflowStep
from shared.steps.transform import TransformStep
from shared.steps.waits import WaitForEventStep, WaitStep

BUILTIN_TYPES = (
    HttpStep,
    TransformStep,
    BranchStep,
    WaitStep,
    WaitForEventStep,
    ParallelStep,
    MapStep,
    SubworkflowStep,
    PublishStep,
)


def register_builtins(registry: StepRegistry) -> StepRegistry:
    """Register every built-in step type (``decision`` and ``llm`` stay reserved)."""
    for step_type in BUILTIN_TYPES:
        registry.register(step_type())
    return registry


def default_registry() -> StepRegistry:
    return register_builtins(StepRegistry())


__all__ = ["BUILTIN_TYPES", "default_registry", "register_builtins"]
