"""Planning the move of a live execution to another version of its workflow. Pure.

``plan_migration`` reads an execution, its step runs and the two definitions and says,
for every live run, which step of the target version it becomes, and every reason the
move would be unsafe, each with a stable code and a JSON pointer (``docs/migration.md``).
Applying a plan is ``MigrateMixin.migrate`` (``shared.engine.migrate_ops``), which plans
again inside its transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidState, json_pointer
from shared.models import (
    ExecutionStatus,
    StepRun,
    StepRunStatus,
    WorkflowDefinition,
    WorkflowExecution,
    WorkflowStep,
)

LIVE_RUN = frozenset({StepRunStatus.SCHEDULED, StepRunStatus.RUNNING, StepRunStatus.WAITING})
"""Runs a migration moves. A run waiting to be retried is ``scheduled`` (attempt > 1):
the engine has no separate ``retrying`` status."""

DONE_RUN = frozenset({StepRunStatus.SUCCEEDED, StepRunStatus.SKIPPED})

FANOUT_TYPES = frozenset({"parallel", "map"})

MAX_MAPPING = 1000
"""Entries a mapping may have (a definition has at most this many steps)."""

STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_VAR_REF = re.compile(
    r"\bvars\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]{1,200})['\"]\s*\])"
)


@dataclass(frozen=True)
class MigrationProblem:
    """One reason the migration is unsafe."""

    code: str
    message: str
    path: str
    retryable: bool = False
    """True when waiting may lift it (a step running now)."""

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "path": self.path}


@dataclass(frozen=True)
class RunMove:
    """A live run and the step of the target version it becomes."""

    run_id: str
    scope: str
    status: str
    from_step: str
    to_step: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "scope": self.scope,
            "status": self.status,
            "fromStep": self.from_step,
            "toStep": self.to_step,
        }


@dataclass
class MigrationPlan:
    """What moving an execution to ``to_version`` does, and why it may not."""

    execution_id: str
    workflow_id: str
    from_version: int
    to_version: int
    status: str
    moves: list[RunMove] = field(default_factory=list)
    problems: list[MigrationProblem] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    """The mapping as given (source step id -> target step id)."""
    rerun: list[str] = field(default_factory=list)
    """Steps the caller allows to run again."""
    reruns: list[str] = field(default_factory=list)
    """Steps done in the source that the target's remaining flow may reach again."""
    added_variables: dict[str, Any] = field(default_factory=dict)
    """Defaults of variables the target declares and the execution lacks (set on apply)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def retryable(self) -> bool:
        return bool(self.problems) and all(p.retryable for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "executionId": self.execution_id,
            "workflowId": self.workflow_id,
            "fromVersion": self.from_version,
            "toVersion": self.to_version,
            "status": self.status,
            "compatible": self.ok,
            "moves": [m.to_dict() for m in self.moves],
            "problems": [p.to_dict() for p in self.problems],
            "mapping": dict(self.mapping),
            "rerun": list(self.rerun),
            "reruns": list(self.reruns),
            "addedVariables": dict(self.added_variables),
        }


class MigrationRefused(InvalidState):
    """``dryRun=false`` on an unsafe plan: nothing was changed."""

    code = "MIGRATION_REFUSED"

    def __init__(self, plan: MigrationPlan) -> None:
        codes = ", ".join(sorted({p.code for p in plan.problems}))
        super().__init__(
            f"execution {plan.execution_id} cannot move to version {plan.to_version}: {codes}",
            retryable=plan.retryable,
            details={"retryable": plan.retryable, "plan": plan.to_dict()},
        )
        self.plan = plan

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["errors"] = [p.to_dict() for p in self.plan.problems]
        return body


def _internal(run: StepRun) -> bool:
    """Engine timers (``$deadline``, start-control timers) are not steps of a version."""
    return run.step_type.startswith("$") or run.step_id.startswith("$")


def _bodies(step: WorkflowStep) -> list[str]:
    """Start steps of a fan-out step's bodies, read from its raw config."""
    config = step.config
    starts: list[str] = []
    if isinstance(config.get("start"), str):
        starts.append(config["start"])
    for branch in config.get("branches") or []:
        if isinstance(branch, dict) and isinstance(branch.get("start"), str):
            starts.append(branch["start"])
    return starts


def _edges(definition: WorkflowDefinition) -> dict[str, list[str]]:
    return {
        step.id: [
            *step.next_steps,
            *filter(None, [step.on_error.fallback_step]),
            *_bodies(step),
        ]
        for step in definition.steps
    }


def _reach(starts: Iterable[str], edges: dict[str, list[str]], strict: bool) -> set[str]:
    """Steps reachable from ``starts`` (``strict``: not the starts themselves unless a
    path leads back to them)."""
    seen: set[str] = set()
    stack = [t for s in starts for t in edges.get(s, [])] if strict else list(starts)
    while stack:
        step = stack.pop()
        if step in seen:
            continue
        seen.add(step)
        stack.extend(edges.get(step, []))
    return seen


def _wait_meaning(step: WorkflowStep) -> Any:
    """What a parked run of ``step`` waits for: an event name, else its whole config."""
    if step.type == "wait_for_event":
        return step.config.get("event")
    return step.config


def _referenced_vars(step: WorkflowStep) -> set[str]:
    text = json.dumps([step.config, [c.expression for c in step.conditions or []]], default=str)
    return {a or b for a, b in _VAR_REF.findall(text)}


def _sets_vars(step: WorkflowStep) -> set[str]:
    names = {step.output_var} if step.output_var else set()
    if step.type == "transform" and isinstance(step.config.get("set"), dict):
        names |= {str(k) for k in step.config["set"]}
    return names


def plan_migration(
    execution: WorkflowExecution,
    runs: list[StepRun],
    source_def: WorkflowDefinition,
    target_def: WorkflowDefinition,
    mapping: dict[str, str] | None = None,
    rerun: set[str] | None = None,
) -> MigrationPlan:
    """The plan for moving ``execution`` (with its ``runs``) from ``source_def`` to
    ``target_def``; ``problems`` empty means it is safe to apply."""
    mapping = dict(mapping or {})
    allowed = set(rerun or ())
    plan = MigrationPlan(
        execution_id=execution.id,
        workflow_id=execution.workflow_id,
        from_version=source_def.version,
        to_version=target_def.version,
        status=execution.status.value,
        mapping=mapping,
        rerun=sorted(allowed),
    )
    problem = plan.problems.append
    if target_def.id != execution.workflow_id:
        problem(
            MigrationProblem(
                "MIGRATION_OTHER_WORKFLOW",
                f"version {target_def.version} belongs to another workflow",
                "/toVersion",
            )
        )
        return plan
    if target_def.version == execution.workflow_version:
        problem(
            MigrationProblem(
                "MIGRATION_SAME_VERSION",
                f"the execution already runs version {target_def.version}",
                "/toVersion",
            )
        )
    if execution.status.terminal:
        problem(
            MigrationProblem(
                "MIGRATION_TERMINAL",
                f"the execution ended ({execution.status.value}); only live ones move",
                "/status",
            )
        )
        return plan
    if execution.status == ExecutionStatus.QUEUED:
        problem(
            MigrationProblem(
                "MIGRATION_QUEUED",
                "the execution waits for a concurrency slot under the source version's "
                "flow control; migrate it once it has started",
                "/status",
                retryable=True,
            )
        )
    for source_id, target_id in sorted(mapping.items()):
        where = json_pointer("mapping", source_id)
        if source_id not in source_def.step_index:
            problem(
                MigrationProblem(
                    "MIGRATION_MAPPING_UNKNOWN_SOURCE",
                    f"version {source_def.version} has no step {source_id!r}",
                    where,
                )
            )
        if target_id not in target_def.step_index:
            problem(
                MigrationProblem(
                    "MIGRATION_STEP_MISSING",
                    f"the mapping sends {source_id!r} to {target_id!r}, which version "
                    f"{target_def.version} does not have",
                    where,
                )
            )

    live = [r for r in runs if r.status in LIVE_RUN and not _internal(r)]
    starts: set[str] = set()
    for run in live:
        target_id = mapping.get(run.step_id, run.step_id)
        target = target_def.step_index.get(target_id)
        plan.moves.append(
            RunMove(run.id, run.scope, run.status.value, run.step_id, target.id if target else None)
        )
        where = json_pointer("runs", run.id)
        if target is None:
            problem(
                MigrationProblem(
                    "MIGRATION_STEP_MISSING",
                    f"run of step {run.step_id!r} ({run.status.value}) has no step "
                    f"{target_id!r} in version {target_def.version}; map it to one",
                    where,
                )
            )
            continue
        starts.add(target.id)
        if run.status == StepRunStatus.RUNNING:
            problem(
                MigrationProblem(
                    "MIGRATION_RUNNING_STEP",
                    f"step {run.step_id!r} is running now (claimed by a worker); try again "
                    "when it has finished",
                    where,
                    retryable=True,
                )
            )
        if target.type != run.step_type:
            problem(
                MigrationProblem(
                    "MIGRATION_STEP_TYPE_CHANGED",
                    f"step {run.step_id!r} is a {run.step_type} step; {target.id!r} in "
                    f"version {target_def.version} is a {target.type}",
                    where,
                )
            )
            continue
        source = source_def.step_index.get(run.step_id)
        fanout = "total" in run.state or run.step_type in FANOUT_TYPES
        if run.status == StepRunStatus.WAITING and fanout:
            if source is None or source.config != target.config:
                problem(
                    MigrationProblem(
                        "MIGRATION_FANOUT_CHANGED",
                        f"{run.step_type} step {run.step_id!r} has branches or items in "
                        f"flight and its config differs in version {target_def.version}",
                        where,
                    )
                )
            continue
        signal = run.state.get("signal")
        if signal is not None and target.config.get("event") != signal:
            problem(
                MigrationProblem(
                    "MIGRATION_WAIT_CHANGED",
                    f"step {run.step_id!r} waits for event {signal!r}; {target.id!r} in "
                    f"version {target_def.version} waits for {target.config.get('event')!r}",
                    where,
                )
            )
        elif (
            run.status == StepRunStatus.WAITING
            and signal is None
            and "childExecutionId" not in run.state
            and (source is None or _wait_meaning(source) != _wait_meaning(target))
        ):
            problem(
                MigrationProblem(
                    "MIGRATION_WAIT_CHANGED",
                    f"step {run.step_id!r} is parked and what it waits for differs in "
                    f"version {target_def.version}",
                    where,
                )
            )

    # Steps the remaining flow may run: from each live run's step (itself included).
    target_edges = _edges(target_def)
    remaining = _reach(starts, target_edges, strict=False)
    # Steps already done that the target's remaining flow reaches again, and the
    # source's (from the same places) would not: a move would run them a second time.
    done = {r.step_id for r in runs if r.status in DONE_RUN and not _internal(r)}
    source_starts = {r.step_id for r in live}
    again_source = _reach(source_starts, _edges(source_def), strict=True)
    again_target = _reach(starts, target_edges, strict=True)
    reverse = {t: s for s, t in mapping.items()}
    for step_id in sorted(again_target):
        if reverse.get(step_id, step_id) in done and step_id not in again_source:
            plan.reruns.append(step_id)
            if step_id not in allowed:
                problem(
                    MigrationProblem(
                        "MIGRATION_STEP_RERUN",
                        f"step {step_id!r} already ran; in version {target_def.version} the "
                        "remaining flow reaches it again (list it in rerun to allow that)",
                        json_pointer("steps", step_id),
                    )
                )

    # Variables: what the execution has, what the target declares, and what a step of
    # the remaining flow sets before (may reach) the step that reads it.
    plan.added_variables = {
        k: v for k, v in target_def.variables.items() if k not in execution.variables
    }
    known = set(execution.variables) | set(target_def.variables)
    for step in target_def.steps:
        if step.id not in remaining:
            continue
        missing = _referenced_vars(step) - known
        if not missing:
            continue
        setters = {
            s.id: _sets_vars(s) for s in target_def.steps if s.id in remaining and _sets_vars(s)
        }
        for name in sorted(missing):
            if any(
                name in names and step.id in _reach([sid], target_edges, strict=True)
                for sid, names in setters.items()
            ):
                continue
            problem(
                MigrationProblem(
                    "MIGRATION_VARIABLE_MISSING",
                    f"step {step.id!r} of version {target_def.version} reads vars.{name}, "
                    "which the execution lacks and no earlier remaining step sets",
                    json_pointer("steps", step.id, "vars", name),
                )
            )
    return plan
