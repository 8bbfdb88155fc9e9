"""``transform``: set variables from expressions (no I/O, runs inline)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.engine.steps import Complete, Outcome, StepConfig, StepContext, StepType
from shared.errors import Issue
from shared.expressions import check_template
from shared.models import WorkflowStep


class TransformConfig(StepConfig):
    set: dict[str, Any] = Field(default_factory=dict)
    """Variables to set: name -> template (``${expr}`` keeps the value's type)."""
    output: Any = None
    """Template of the step output; defaults to the values set."""


class TransformStep(StepType):
    type_name = "transform"
    inline = True
    config_model = TransformConfig

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        issues = check_template(config.set, f"{path}/config/set")
        issues += check_template(config.output, f"{path}/config/output")
        for name in config.set:
            if not name.isidentifier():
                issues.append(
                    Issue(
                        "INVALID_VARIABLE_NAME",
                        f"{name!r} is not a valid variable name",
                        f"{path}/config/set/{name}",
                    )
                )
        return issues

    async def execute(self, ctx: StepContext) -> Outcome:
        values: dict[str, Any] = {}
        for name, template in ctx.config.set.items():
            values[name] = ctx.render(template)
            ctx.variables[name] = values[name]  # later entries see earlier ones
        output = ctx.render(ctx.config.output) if ctx.config.output is not None else values
        return Complete(output=output, set_vars=values)
