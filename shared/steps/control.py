"""``parallel`` (fixed branches, joined) and ``map`` (one body per list item, with a
concurrency limit). Both fan out to bodies: chains of steps that start at a step id
and end at a step without nextSteps; the engine joins them without a hot counter."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from shared.engine.steps import (
    QUICK_STEP_SECONDS,
    Body,
    Complete,
    FanOut,
    Outcome,
    StepConfig,
    StepContext,
    StepType,
)
from shared.errors import Issue, StepFailed
from shared.expressions import compile_expression
from shared.models import JoinMark, StepRun, WorkflowStep

MAX_ITEMS = 1000


class Branch(StepConfig):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    start: str
    """First step of the branch."""


class ParallelConfig(StepConfig):
    branches: list[Branch] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _unique(self) -> ParallelConfig:
        names = [b.name for b in self.branches]
        if len(set(names)) != len(names):
            raise ValueError("branch names must be unique")
        return self


class ParallelStep(StepType):
    """Runs every branch at once; the output maps branch names to their last outputs."""

    type_name = "parallel"
    config_model = ParallelConfig
    inline = True
    """It only decides its bodies (no I/O): delivered without a claim of its own, or
    run in the commit before it, its cheap branches recorded with it."""

    def time_limit(self, config: Any) -> float | None:
        return QUICK_STEP_SECONDS  # it only records what comes next

    def bodies(self, config: Any) -> list[str]:
        return [b.start for b in config.branches]

    def referenced_steps(self, config: Any) -> list[tuple[str, str]]:
        return [(b.start, f"branches/{i}/start") for i, b in enumerate(config.branches)]

    async def execute(self, ctx: StepContext) -> Outcome:
        total = len(ctx.config.branches)
        return FanOut(total=total, window=total)

    def body(self, owner: StepRun, config: Any, index: int) -> Body:
        return Body(index, config.branches[index].start, {"prev": owner.context.get("prev")})

    def join(self, owner: StepRun, config: Any, marks: list[JoinMark]) -> Complete:
        return Complete(output={config.branches[m.index].name: m.output for m in marks})


class MapConfig(StepConfig):
    items: str = Field(min_length=1)
    """CEL expression giving the list to map over."""
    start: str
    """First step of the body run for each item (it sees ``item`` and ``index``)."""
    concurrency: int = Field(default=5, ge=1, le=100)
    max_items: int = Field(default=MAX_ITEMS, ge=1, le=10_000)


class MapStep(StepType):
    """Runs the body once per item, at most ``concurrency`` at a time; output in order."""

    type_name = "map"
    config_model = MapConfig
    inline = True
    """Like ``parallel``: it evaluates its items and decides its bodies, no I/O."""

    def time_limit(self, config: Any) -> float | None:
        return QUICK_STEP_SECONDS  # it only records what comes next

    def check(self, step: WorkflowStep, config: Any, path: str) -> list[Issue]:
        where = f"{path}/config/items"
        compiled, issues = compile_expression(config.items, where)
        if compiled is not None and not compiled.roots:
            # A constant (``'a,b'``, ``42``): its value is known now, and it must be a list.
            try:
                value = compiled.evaluate({})
            except StepFailed as exc:
                return [Issue(exc.code, exc.message, where)]
            if not isinstance(value, list):
                issues.append(
                    Issue(
                        "MAP_ITEMS_NOT_A_LIST",
                        f"items is the constant {config.items!r}, not a list: give a CEL "
                        "expression over input or vars that yields one",
                        where,
                    )
                )
        return issues

    def bodies(self, config: Any) -> list[str]:
        return [config.start]

    def referenced_steps(self, config: Any) -> list[tuple[str, str]]:
        return [(config.start, "start")]

    async def execute(self, ctx: StepContext) -> Outcome:
        items = ctx.evaluate(ctx.config.items)
        if not isinstance(items, list):
            raise StepFailed(
                f"map items gave {type(items).__name__}, not a list",
                code="EXPRESSION_TYPE",
                retryable=False,
            )
        if len(items) > ctx.config.max_items:
            raise StepFailed(
                f"{len(items)} items exceed maxItems={ctx.config.max_items}",
                code="TOO_MANY_ITEMS",
                retryable=False,
            )
        ctx.run.input = {"items": len(items), "concurrency": ctx.config.concurrency}
        if not items:
            return Complete(output=[])
        return FanOut(
            total=len(items), window=min(ctx.config.concurrency, len(items)), state={"items": items}
        )

    def body(self, owner: StepRun, config: Any, index: int) -> Body:
        item = owner.state["items"][index]
        return Body(index, config.start, {"prev": item, "item": item, "index": index})

    def join(self, owner: StepRun, config: Any, marks: list[JoinMark]) -> Complete:
        return Complete(output=[m.output for m in marks])
