"""The structural diff of two workflow versions (issue 14, part 3).

``diff_definitions(a, b)`` compares two definitions as their JSON documents: steps
matched by id (added, removed, changed with field-level changes), the graph's edges
(``nextSteps``, branch cases and default, parallel branches, map bodies, decision
leaves, ``onError.fallbackStep``), ``variables`` by key, the trigger field by field and
the other top-level fields. Server fields (``id``, ``version``, ``owner``, timestamps,
``executionStats``, ``lastExecuted``) are ignored. The start step is compared as the
engine uses it: ``startStep``, else the first step.

Every change is ``{path, kind, before, after}``: ``path`` a JSON pointer (inside the
step, the variables or the trigger; from the definition's root for the top-level
fields), ``kind`` ``added`` / ``removed`` / ``changed``; ``before`` is absent for
``added``, ``after`` for ``removed`` (and either is absent when its value is null).

The work is bounded whatever the input: the field diff descends at most
``MAX_DEPTH`` levels (a deeper difference is reported as its whole subtree) and
reports at most ``MAX_CHANGES`` changes overall; either limit sets ``truncated``.
Comparison walks iteratively, so deep documents cannot exhaust the stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from shared.models import WorkflowDefinition
from shared.models._base import ApiModel

__all__ = [
    "MAX_CHANGES",
    "MAX_DEPTH",
    "EdgeChange",
    "EdgesDiff",
    "FieldChange",
    "StepChange",
    "StepRef",
    "StepsDiff",
    "VersionDiff",
    "diff_definitions",
    "graph_edges",
]

MAX_DEPTH = 32
"""Levels the field diff descends below a step, the variables, trigger or a top-level
field; a difference deeper down is one change of the whole subtree at this depth."""
MAX_CHANGES = 5000
"""Changes reported in one diff (field changes, steps and edges together)."""

SERVER_FIELDS = frozenset(
    {"id", "version", "owner", "createdAt", "updatedAt", "lastExecuted", "executionStats"}
)
"""Fields the server sets: not part of what a version says."""
_SECTIONS = frozenset({"steps", "variables", "trigger", "startStep"})
"""Top-level fields diffed by their own rules."""

ChangeKind = Literal["added", "removed", "changed"]
EdgeKind = Literal["next", "case", "default", "branch", "body", "decision", "fallback"]


class FieldChange(ApiModel):
    """One changed value: where, how, and its value before and after."""

    path: str = Field(description="JSON pointer of the value (RFC 6901).")
    kind: ChangeKind
    before: Any = Field(default=None, description="The old value; absent when added or null.")
    after: Any = Field(default=None, description="The new value; absent when removed or null.")


class StepRef(ApiModel):
    """A step added or removed."""

    id: str
    type: str


class StepChange(ApiModel):
    """A step present in both versions whose content differs."""

    id: str
    type: str = Field(description="The step's type in the newer version.")
    changes: list[FieldChange] = Field(
        description="Field-level changes; paths are JSON pointers inside the step."
    )


class StepsDiff(ApiModel):
    added: list[StepRef] = Field(default_factory=list)
    removed: list[StepRef] = Field(default_factory=list)
    changed: list[StepChange] = Field(default_factory=list)


class EdgeChange(ApiModel):
    """An edge of the step graph: ``source`` may go to (or fan out to) ``target``."""

    source: str
    target: str
    kind: EdgeKind = Field(
        description="next (nextSteps), case or default (a branch step's cases), branch "
        "(a parallel branch start), body (a map body start), decision (a decision leaf), "
        "fallback (onError.fallbackStep)."
    )
    label: str | None = Field(default=None, description="The parallel branch's name.")


class EdgesDiff(ApiModel):
    added: list[EdgeChange] = Field(default_factory=list)
    removed: list[EdgeChange] = Field(default_factory=list)


class VersionDiff(ApiModel):
    """What changed from version ``from`` to version ``to`` of a workflow."""

    workflow_id: str = ""
    from_version: int = 0
    to_version: int = 0
    identical: bool = Field(description="True when nothing but server fields differ.")
    steps: StepsDiff = Field(default_factory=StepsDiff)
    edges: EdgesDiff = Field(default_factory=EdgesDiff)
    variables: list[FieldChange] = Field(
        default_factory=list, description="Changes of `variables`; paths inside it (`/key`)."
    )
    trigger: list[FieldChange] = Field(
        default_factory=list, description="Changes of `trigger`; paths inside it (`/cron`)."
    )
    fields: list[FieldChange] = Field(
        default_factory=list,
        description="Other top-level fields (name, description, timeoutSeconds, output, "
        "concurrency, priority, tags, startStep, ...); paths from the root (`/name`).",
    )
    truncated: bool = Field(
        default=False,
        description=f"A limit applied: at most {MAX_CHANGES} changes are listed, and a "
        f"difference deeper than {MAX_DEPTH} levels is reported as its whole subtree.",
    )


# -- field diff -------------------------------------------------------------------------


@dataclass
class _Budget:
    """Changes left to report across one diff."""

    left: int = MAX_CHANGES
    truncated: bool = False

    def take(self) -> bool:
        if self.left <= 0:
            self.truncated = True
            return False
        self.left -= 1
        return True


@dataclass
class _Changes:
    budget: _Budget
    items: list[FieldChange] = field(default_factory=list)

    def add(self, path: str, kind: ChangeKind, before: Any = None, after: Any = None) -> None:
        if self.budget.take():
            self.items.append(FieldChange(path=path, kind=kind, before=before, after=after))


def _pointer(token: str | int) -> str:
    return "/" + str(token).replace("~", "~0").replace("/", "~1")


def _same(a: Any, b: Any) -> bool:
    """Deep equality of JSON values, iterative (no recursion limit to hit)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif type(x) is not type(y) or x != y:  # 1 and 1.0 and True differ in a document
            return False
    return True


_ABSENT: Any = object()
"""A value a document does not have (distinct from null)."""


def _differ(x: Any, y: Any) -> bool:
    return x is _ABSENT or y is _ABSENT or not _same(x, y)


def _diff_values(before: Any, after: Any, path: str, out: _Changes) -> None:
    """Field-level changes from ``before`` to ``after`` (both present), in document
    order: keys sorted, list items by index."""
    stack: list[tuple[Any, Any, str, int]] = [(before, after, path, 0)]
    while stack:
        if out.budget.left <= 0:  # nothing more can be listed: only say whether it would
            if any(_differ(x, y) for x, y, _, _ in stack):
                out.budget.truncated = True
            return
        x, y, here, depth = stack.pop()
        if x is _ABSENT:
            out.add(here, "added", after=y)
            continue
        if y is _ABSENT:
            out.add(here, "removed", before=x)
            continue
        both_dicts = isinstance(x, dict) and isinstance(y, dict)
        both_lists = isinstance(x, list) and isinstance(y, list)
        if not (both_dicts or both_lists):
            if not _same(x, y):
                out.add(here, "changed", x, y)
            continue
        if depth >= MAX_DEPTH:
            if not _same(x, y):
                out.budget.truncated = True
                out.add(here, "changed", x, y)
            continue
        if both_dicts:
            children = [
                (x.get(key, _ABSENT), y.get(key, _ABSENT), here + _pointer(key), depth + 1)
                for key in sorted(x.keys() | y.keys())
            ]
        else:
            children = [
                (
                    x[index] if index < len(x) else _ABSENT,
                    y[index] if index < len(y) else _ABSENT,
                    here + _pointer(index),
                    depth + 1,
                )
                for index in range(max(len(x), len(y)))
            ]
        stack.extend(reversed(children))  # the first child is diffed first


def _section(before: dict[str, Any], after: dict[str, Any], budget: _Budget) -> list[FieldChange]:
    out = _Changes(budget)
    _diff_values(before, after, "", out)
    return out.items


# -- edges ------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) and value else []


def _config_edges(step_id: str, kind: str, config: dict[str, Any]) -> list[EdgeChange]:
    """Edges a step's config names, read from the raw config as each step type
    declares them (``referenced_steps`` of branch, parallel, map and decision)."""
    edges: list[EdgeChange] = []

    def items(key: str) -> list[dict[str, Any]]:
        found = config.get(key)
        return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []

    if kind == "branch":
        for case in items("cases"):
            edges += [
                EdgeChange(source=step_id, target=t, kind="case")
                for t in _strings(case.get("next"))
            ]
        edges += [
            EdgeChange(source=step_id, target=t, kind="default")
            for t in _strings(config.get("default"))
        ]
    elif kind == "parallel":
        for branch in items("branches"):
            name = branch.get("name")
            edges += [
                EdgeChange(
                    source=step_id,
                    target=t,
                    kind="branch",
                    label=name if isinstance(name, str) else None,
                )
                for t in _strings(branch.get("start"))
            ]
    elif kind == "map":
        edges += [
            EdgeChange(source=step_id, target=t, kind="body") for t in _strings(config.get("start"))
        ]
    elif kind == "decision":
        for node in items("nodes"):
            if node.get("type") == "leaf":
                edges += [
                    EdgeChange(source=step_id, target=t, kind="decision")
                    for t in _strings(node.get("next"))
                ]
    return edges


def _edge_key(edge: EdgeChange) -> tuple[str, str, str, str]:
    return (edge.source, edge.target, edge.kind, edge.label or "")


def graph_edges(definition: WorkflowDefinition) -> list[EdgeChange]:
    """Every edge of the definition's step graph, deduplicated and sorted."""
    found: dict[tuple[str, str, str, str], EdgeChange] = {}
    for step in definition.steps:
        edges = [EdgeChange(source=step.id, target=t, kind="next") for t in step.next_steps]
        edges += _config_edges(step.id, step.type, step.config)
        if step.on_error.fallback_step:
            edges.append(
                EdgeChange(source=step.id, target=step.on_error.fallback_step, kind="fallback")
            )
        for edge in edges:
            found.setdefault(_edge_key(edge), edge)
    return [found[key] for key in sorted(found)]


# -- the diff ---------------------------------------------------------------------------


def _document(definition: WorkflowDefinition) -> dict[str, Any]:
    return {k: v for k, v in definition.to_json_dict().items() if k not in SERVER_FIELDS}


def _steps(a: WorkflowDefinition, b: WorkflowDefinition, budget: _Budget) -> StepsDiff:
    before = {s["id"]: s for s in _document(a)["steps"]}
    after = {s["id"]: s for s in _document(b)["steps"]}
    diff = StepsDiff()
    for step_id, step in after.items():
        if step_id not in before and budget.take():
            diff.added.append(StepRef(id=step_id, type=step["type"]))
    for step_id, step in before.items():
        if step_id not in after and budget.take():
            diff.removed.append(StepRef(id=step_id, type=step["type"]))
    for step_id, step in after.items():
        if step_id in before:
            old = {k: v for k, v in before[step_id].items() if k != "id"}
            new = {k: v for k, v in step.items() if k != "id"}
            changes = _section(old, new, budget)
            if changes:
                diff.changed.append(StepChange(id=step_id, type=step["type"], changes=changes))
    return diff


def _edges(a: WorkflowDefinition, b: WorkflowDefinition, budget: _Budget) -> EdgesDiff:
    before = {_edge_key(e): e for e in graph_edges(a)}
    after = {_edge_key(e): e for e in graph_edges(b)}
    diff = EdgesDiff()
    diff.added = [after[k] for k in sorted(after.keys() - before.keys()) if budget.take()]
    diff.removed = [before[k] for k in sorted(before.keys() - after.keys()) if budget.take()]
    return diff


def _fields(a: WorkflowDefinition, b: WorkflowDefinition, budget: _Budget) -> list[FieldChange]:
    before = {k: v for k, v in _document(a).items() if k not in _SECTIONS}
    after = {k: v for k, v in _document(b).items() if k not in _SECTIONS}
    before["startStep"] = a.first_step()
    after["startStep"] = b.first_step()
    return _section(before, after, budget)


def diff_definitions(a: WorkflowDefinition, b: WorkflowDefinition) -> VersionDiff:
    """What changed from ``a`` to ``b`` (see the module's docstring); a pure function."""
    budget = _Budget()
    steps = _steps(a, b, budget)
    edges = _edges(a, b, budget)
    variables = _section(dict(a.variables), dict(b.variables), budget)
    trigger = _section(a.trigger.to_json_dict(), b.trigger.to_json_dict(), budget)
    fields = _fields(a, b, budget)
    identical = not (
        steps.added
        or steps.removed
        or steps.changed
        or edges.added
        or edges.removed
        or variables
        or trigger
        or fields
        or budget.truncated
    )
    return VersionDiff(
        workflow_id=b.id or a.id,
        from_version=a.version,
        to_version=b.version,
        identical=identical,
        steps=steps,
        edges=edges,
        variables=variables,
        trigger=trigger,
        fields=fields,
        truncated=budget.truncated,
    )
