"""Graph checks of a definition: scopes, reachability, loops and nesting depth.

A scope is the main flow (from the start step) or one body of a fan-out step
(parallel branch or map body). Edges are ``nextSteps`` and ``fallbackStep``; a body
start is not an edge of its owner's scope. Every step must belong to exactly one
scope, and every cycle must pass through a step with ``maxIterations``.
"""

from __future__ import annotations

from typing import Any

from shared.engine.steps import StepRegistry
from shared.errors import Issue
from shared.models import WorkflowDefinition
from shared.models._graph import strongly_connected

MAX_NESTING = 5


def _edges(definition: WorkflowDefinition) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = {}
    for step in definition.steps:
        targets = list(step.next_steps)
        if step.on_error.fallback_step:
            targets.append(step.on_error.fallback_step)
        edges[step.id] = targets
    return edges


def _reach(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in edges.get(stack.pop(), []):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def check_graph(
    definition: WorkflowDefinition,
    registry: StepRegistry,
    configs: dict[str, Any],
    ids: dict[str, int],
) -> list[Issue]:
    issues: list[Issue] = []
    edges = _edges(definition)
    bodies = {
        step.id: registry.get(step.type).bodies(configs[step.id]) for step in definition.steps
    }
    owner_of: dict[str, str] = {}
    depth: dict[str, int] = {}
    scopes: list[tuple[str, int, set[str]]] = []
    queue: list[tuple[str, int]] = [(definition.first_step(), 0)]
    visited_starts: set[str] = set()
    while queue:
        start, level = queue.pop(0)
        if start in visited_starts:
            continue
        visited_starts.add(start)
        members = _reach(start, edges)
        scopes.append((start, level, members))
        for member in members:
            for body_start in bodies[member]:
                queue.append((body_start, level + 1))
                depth[body_start] = level + 1
    for start, level, members in scopes:
        for member in sorted(members, key=ids.__getitem__):
            if member in owner_of and owner_of[member] != start:
                issues.append(
                    Issue(
                        "STEP_IN_MULTIPLE_SCOPES",
                        f"step {member!r} is reached from {owner_of[member]!r} and from {start!r}; "
                        "a branch or map body must not flow into steps outside it",
                        f"/steps/{ids[member]}",
                    )
                )
            owner_of.setdefault(member, start)
        if level > MAX_NESTING:
            issues.append(
                Issue(
                    "TOO_DEEP_NESTING",
                    f"fan-out nested deeper than {MAX_NESTING}",
                    f"/steps/{ids[start]}",
                )
            )
    for step in definition.steps:
        if step.id not in owner_of:
            issues.append(
                Issue(
                    "UNREACHABLE_STEP",
                    f"step {step.id!r} is not reachable from the start step",
                    f"/steps/{ids[step.id]}",
                )
            )
    issues.extend(_unbounded_loops(definition, edges, ids))
    return issues


def _unbounded_loops(
    definition: WorkflowDefinition, edges: dict[str, list[str]], ids: dict[str, int]
) -> list[Issue]:
    """Each strongly connected component with a cycle needs a step with maxIterations."""
    issues = []
    for component in strongly_connected(edges):
        cyclic = len(component) > 1 or component[0] in edges.get(component[0], [])
        if not cyclic:
            continue
        if any(definition.step(s).max_iterations for s in component):
            continue
        first = min(component, key=ids.__getitem__)
        issues.append(
            Issue(
                "UNBOUNDED_LOOP",
                f"steps {', '.join(sorted(component, key=ids.__getitem__))} form a loop with no "
                "maxIterations; set maxIterations on one of them",
                f"/steps/{ids[first]}/nextSteps",
            )
        )
    return issues
