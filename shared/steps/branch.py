"""``branch``: the first case whose condition holds chooses the next step."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.engine.steps import Complete, Outcome, StepConfig, StepContext, StepType
from shared.errors import Issue, StepFailed
from shared.expressions import compile_expression
from shared.models import WorkflowStep


class BranchCase(StepConfig):
    when: str = Field(min_length=1)
    """CEL condition."""
    next: str
    """Step to run when the condition is true (one of the step's nextSteps)."""


class BranchConfig(StepConfig):
    cases: list[BranchCase] = Field(min_length=1)
    default: str | None = None
    """Step when no case holds; without it, no match fails the step (NO_BRANCH_MATCHED)."""


class BranchStep(StepType):
    type_name = "branch"
    inline = True
    branching = True
    config_model = BranchConfig

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        issues: list[Issue] = []
        for index, case in enumerate(config.cases):
            _, found = compile_expression(case.when, f"{path}/config/cases/{index}/when")
            issues.extend(found)
        for target, pointer in self.referenced_steps(config):
            if target not in step.next_steps:
                issues.append(
                    Issue(
                        "BRANCH_TARGET_NOT_IN_NEXT_STEPS",
                        f"branch target {target!r} is not listed in nextSteps",
                        f"{path}/config/{pointer}",
                    )
                )
        return issues

    def referenced_steps(self, config: Any) -> list[tuple[str, str]]:
        refs = [(case.next, f"cases/{i}/next") for i, case in enumerate(config.cases)]
        if config.default:
            refs.append((config.default, "default"))
        return refs

    async def execute(self, ctx: StepContext) -> Outcome:
        for index, case in enumerate(ctx.config.cases):
            value = ctx.evaluate(case.when)
            if not isinstance(value, bool):
                raise StepFailed(
                    f"case {index} condition returned {type(value).__name__}, not bool",
                    code="EXPRESSION_TYPE",
                    retryable=False,
                )
            if value:
                return Complete(output={"case": index, "next": case.next}, next_steps=[case.next])
        if ctx.config.default:
            return Complete(
                output={"case": "default", "next": ctx.config.default},
                next_steps=[ctx.config.default],
            )
        raise StepFailed(
            "no branch case matched and no default", code="NO_BRANCH_MATCHED", retryable=False
        )
