"""``diff_definitions``: the structural diff of two workflow versions (issue 14, part 3)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.app.version_diff import (
    MAX_CHANGES,
    MAX_DEPTH,
    VersionDiff,
    diff_definitions,
    graph_edges,
)
from shared.models import WorkflowDefinition


def base() -> dict[str, Any]:
    return {
        "name": "orders",
        "description": "ships orders",
        "variables": {"region": "eu", "limits": {"max": 3}},
        "tags": ["a"],
        "steps": [
            {
                "id": "fetch",
                "type": "http",
                "config": {"url": "https://a.test/x", "method": "GET"},
                "nextSteps": ["pick"],
            },
            {
                "id": "pick",
                "type": "branch",
                "config": {
                    "cases": [{"when": "prev.n > 1", "next": "big"}],
                    "default": "small",
                },
                "nextSteps": ["big", "small"],
            },
            {"id": "big", "type": "transform", "config": {"set": {"s": "big"}}},
            {"id": "small", "type": "transform", "config": {"set": {"s": "small"}}},
        ],
    }


def wf(doc: dict[str, Any], **server: Any) -> WorkflowDefinition:
    return WorkflowDefinition.model_validate({**doc, **server})


def diff(a: dict[str, Any], b: dict[str, Any]) -> VersionDiff:
    return diff_definitions(wf(a), wf(b))


def changes(d: VersionDiff, step: str) -> list[tuple[str, str, Any, Any]]:
    (found,) = [s for s in d.steps.changed if s.id == step]
    return [(c.path, c.kind, c.before, c.after) for c in found.changes]


def edges(d: VersionDiff, which: str) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.kind) for e in getattr(d.edges, which)}


def test_identical_versions_give_an_empty_diff() -> None:
    d = diff(base(), base())
    assert d.identical and not d.truncated
    assert d.steps.model_dump() == {"added": [], "removed": [], "changed": []}
    assert (d.edges.added, d.edges.removed, d.variables, d.trigger, d.fields) == (
        [],
        [],
        [],
        [],
        [],
    )


def test_server_fields_are_ignored() -> None:
    a = wf(base(), id="w1", version=1, owner="alice", createdAt=datetime(2020, 1, 1, tzinfo=UTC))
    b = wf(
        base(),
        id="w1",
        version=7,
        owner="bob",
        createdAt=datetime(2026, 1, 1, tzinfo=UTC),
        updatedAt=datetime(2026, 1, 2, tzinfo=UTC),
        lastExecuted=datetime(2026, 1, 3, tzinfo=UTC),
        executionStats={"total": 5, "window": 5},
    )
    d = diff_definitions(a, b)
    assert d.identical
    assert (d.workflow_id, d.from_version, d.to_version) == ("w1", 1, 7)


def test_steps_added_and_removed_with_their_types() -> None:
    b = base()
    b["steps"][3] = {"id": "tiny", "type": "wait", "config": {"seconds": 1}}
    b["steps"][1]["config"]["default"] = "tiny"
    b["steps"][1]["nextSteps"] = ["big", "tiny"]
    b["steps"].append({"id": "extra", "type": "transform", "config": {}})
    d = diff(base(), b)
    assert [(s.id, s.type) for s in d.steps.added] == [("tiny", "wait"), ("extra", "transform")]
    assert [(s.id, s.type) for s in d.steps.removed] == [("small", "transform")]
    assert not d.identical


def test_field_level_changes_of_a_step_are_json_pointers() -> None:
    b = base()
    b["steps"][0]["config"]["url"] = "https://b.test/y"
    b["steps"][0]["config"]["headers"] = {"a/b": "1"}
    del b["steps"][0]["config"]["method"]
    b["steps"][0]["timeoutSeconds"] = 5
    d = diff(base(), b)
    assert changes(d, "fetch") == [
        ("/config/headers", "added", None, {"a/b": "1"}),
        ("/config/method", "removed", "GET", None),
        ("/config/url", "changed", "https://a.test/x", "https://b.test/y"),
        ("/timeoutSeconds", "added", None, 5.0),
    ]
    assert [s.id for s in d.steps.changed] == ["fetch"]
    assert d.edges.added == d.edges.removed == []


def test_pointer_tokens_are_escaped() -> None:
    a, b = base(), base()
    a["steps"][0]["config"]["headers"] = {"a/b~c": "1"}
    b["steps"][0]["config"]["headers"] = {"a/b~c": "2"}
    d = diff(a, b)
    assert changes(d, "fetch")[0][0] == "/config/headers/a~1b~0c"


def test_a_type_change_is_a_change_of_type() -> None:
    b = base()
    b["steps"][2] = {"id": "big", "type": "wait", "config": {"seconds": 2}}
    d = diff(base(), b)
    found = changes(d, "big")
    assert ("/type", "changed", "transform", "wait") in found
    assert [s.type for s in d.steps.changed] == ["wait"]
    assert not d.steps.added and not d.steps.removed


def test_edges_of_next_steps_and_branch_cases() -> None:
    b = base()
    b["steps"][1]["config"]["cases"][0]["next"] = "small"
    b["steps"][1]["config"]["default"] = "big"
    d = diff(base(), b)
    assert edges(d, "added") == {("pick", "small", "case"), ("pick", "big", "default")}
    assert edges(d, "removed") == {("pick", "big", "case"), ("pick", "small", "default")}


def test_edges_of_parallel_branches_map_bodies_decisions_and_fallbacks() -> None:
    a: dict[str, Any] = {
        "name": "fan",
        "steps": [
            {
                "id": "fan",
                "type": "parallel",
                "config": {"branches": [{"name": "left", "start": "l1"}]},
                "nextSteps": ["each"],
            },
            {"id": "l1", "type": "transform", "config": {}},
            {"id": "l2", "type": "transform", "config": {}},
            {
                "id": "each",
                "type": "map",
                "config": {"items": "${input.xs}", "start": "m1"},
                "nextSteps": ["route"],
                "onError": {"strategy": "fallback", "fallbackStep": "oops"},
            },
            {"id": "m1", "type": "transform", "config": {}},
            {"id": "m2", "type": "transform", "config": {}},
            {
                "id": "route",
                "type": "decision",
                "config": {"nodes": [{"id": "n", "type": "leaf", "next": "ok"}]},
                "nextSteps": ["ok", "oops"],
            },
            {"id": "ok", "type": "transform", "config": {}},
            {"id": "oops", "type": "transform", "config": {}},
        ],
    }
    b = copy.deepcopy(a)
    b["steps"][0]["config"]["branches"] = [
        {"name": "left", "start": "l2"},
        {"name": "right", "start": "l1"},
    ]
    b["steps"][3]["config"]["start"] = "m2"
    b["steps"][3]["onError"] = {"strategy": "fallback", "fallbackStep": "ok"}
    b["steps"][6]["config"]["nodes"][0]["next"] = "oops"
    d = diff(a, b)
    added = {(e.source, e.target, e.kind, e.label) for e in d.edges.added}
    removed = {(e.source, e.target, e.kind, e.label) for e in d.edges.removed}
    assert added == {
        ("fan", "l2", "branch", "left"),
        ("fan", "l1", "branch", "right"),
        ("each", "m2", "body", None),
        ("each", "ok", "fallback", None),
        ("route", "oops", "decision", None),
    }
    assert removed == {
        ("fan", "l1", "branch", "left"),
        ("each", "m1", "body", None),
        ("each", "oops", "fallback", None),
        ("route", "ok", "decision", None),
    }
    keys = [(e.source, e.target, e.kind, e.label or "") for e in graph_edges(wf(a))]
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    assert ("fan", "each", "next", "") in keys


def test_variables_by_key() -> None:
    b = base()
    b["variables"] = {"limits": {"max": 4}, "new": [1, 2]}
    d = diff(base(), b)
    assert [(c.path, c.kind, c.before, c.after) for c in d.variables] == [
        ("/limits/max", "changed", 3, 4),
        ("/new", "added", None, [1, 2]),
        ("/region", "removed", "eu", None),
    ]


def test_trigger_field_by_field() -> None:
    a, b = base(), base()
    a["trigger"] = {"type": "schedule", "cron": "0 * * * *"}
    b["trigger"] = {"type": "schedule", "cron": "5 * * * *", "timezone": "Europe/Paris"}
    d = diff(a, b)
    assert [(c.path, c.before, c.after) for c in d.trigger] == [
        ("/cron", "0 * * * *", "5 * * * *"),
        ("/timezone", "UTC", "Europe/Paris"),
    ]
    b["trigger"] = {"type": "event", "topic": "orders"}
    kinds = {(c.path, c.kind) for c in diff(a, b).trigger}
    assert {("/type", "changed"), ("/topic", "added"), ("/cron", "removed")} <= kinds


def test_top_level_fields() -> None:
    b = base()
    b.update(
        name="orders2",
        description=None,
        timeoutSeconds=60,
        output={"r": "${vars.s}"},
        concurrency=[{"limit": 2}],
        priority="input.p",
        tags=["a", "b"],
    )
    d = diff(base(), b)
    found = {c.path: (c.kind, c.before, c.after) for c in d.fields}
    assert found["/name"] == ("changed", "orders", "orders2")
    assert found["/description"] == ("removed", "ships orders", None)
    assert found["/timeoutSeconds"] == ("added", None, 60.0)
    assert found["/output"] == ("added", None, {"r": "${vars.s}"})
    assert found["/concurrency/0"][0] == "added"
    assert found["/priority"] == ("added", None, "input.p")
    assert found["/tags/1"] == ("added", None, "b")
    assert not d.steps.changed and not d.variables


def test_start_step_is_compared_as_the_engine_uses_it() -> None:
    explicit = base()
    explicit["startStep"] = "fetch"  # the first step anyway
    assert diff(base(), explicit).identical
    moved = base()
    moved["startStep"] = "pick"
    d = diff(base(), moved)
    assert [(c.path, c.before, c.after) for c in d.fields] == [("/startStep", "fetch", "pick")]


def test_order_is_deterministic() -> None:
    a, b = base(), base()
    b["steps"][0]["config"] = {"z": 1, "a": 2, "m": [3, 4]}
    b["variables"] = {"z": 1, "b": 2, "a": 3}
    first = diff(a, b).model_dump()
    assert all(diff(a, b).model_dump() == first for _ in range(3))
    assert [c["path"] for c in first["variables"]] == ["/a", "/b", "/limits", "/region", "/z"]


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def test_a_deep_difference_is_reported_as_its_subtree_and_truncated() -> None:
    a, b = base(), base()
    a["variables"] = {"deep": _nested(MAX_DEPTH + 20, 1)}
    b["variables"] = {"deep": _nested(MAX_DEPTH + 20, 2)}
    d = diff(a, b)
    assert d.truncated and not d.identical
    (change,) = d.variables
    # /deep is depth 1; descent stops at MAX_DEPTH, so the pointer has MAX_DEPTH tokens
    assert change.path == "/deep" + "/k" * (MAX_DEPTH - 1)
    assert change.kind == "changed"
    assert (change.before, change.after) == (_nested(21, 1), _nested(21, 2))


def test_a_difference_just_within_the_depth_limit_is_exact() -> None:
    a, b = base(), base()
    a["variables"] = {"deep": _nested(MAX_DEPTH - 2, 1)}
    b["variables"] = {"deep": _nested(MAX_DEPTH - 2, 2)}
    d = diff(a, b)
    assert not d.truncated
    (change,) = d.variables
    assert (change.before, change.after) == (1, 2)


def test_equal_deep_subtrees_are_not_changes() -> None:
    a = base()
    a["variables"] = {"deep": _nested(200, [1, 2])}
    d = diff(a, copy.deepcopy(a))
    assert d.identical and not d.truncated


def test_the_number_of_changes_is_capped() -> None:
    a, b = base(), base()
    a["variables"] = {f"k{i:05}": i for i in range(MAX_CHANGES + 300)}
    b["variables"] = {f"k{i:05}": i + 1 for i in range(MAX_CHANGES + 300)}
    b["name"] = "renamed"
    d = diff(a, b)
    assert d.truncated
    assert len(d.variables) == MAX_CHANGES
    assert d.variables[0].path == "/k00000"
    assert d.fields == []  # the budget is spent: listed nowhere, but truncated says so


def test_types_of_scalars_matter() -> None:
    a, b = base(), base()
    a["variables"] = {"flag": 1}
    b["variables"] = {"flag": True}
    assert [c.path for c in diff(a, b).variables] == ["/flag"]


def test_the_json_form_omits_absent_sides() -> None:
    b = base()
    b["variables"]["n"] = 1
    body = diff(base(), b).to_json_dict()
    assert body["variables"] == [{"path": "/n", "kind": "added", "after": 1}]
    assert body["identical"] is False and body["truncated"] is False


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None


def _resolve(document: Any, pointer: str) -> bool:
    """Whether the JSON pointer names a value of ``document``."""
    node = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


if given is not None:
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=12,
    )
    variables = st.dictionaries(st.text(max_size=4), json_values, max_size=4)

    @settings(max_examples=150, deadline=None)
    @given(variables, variables)
    def test_property_changed_paths_exist_in_a_or_b(
        before: dict[str, Any], after: dict[str, Any]
    ) -> None:
        a, b = base(), base()
        a["variables"], b["variables"] = before, after
        d = diff(a, b)
        assert diff(a, copy.deepcopy(a)).identical
        assert d.identical == (before == after and _same_types(before, after))
        for change in d.variables:
            if change.kind != "added":
                assert _resolve(before, change.path), change
            if change.kind != "removed":
                assert _resolve(after, change.path), change


def _same_types(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b)


@pytest.mark.parametrize("field", ["id", "version", "owner"])
def test_each_server_field_alone_changes_nothing(field: str) -> None:
    values = {"id": ("x", "y"), "version": (1, 2), "owner": ("a", "b")}[field]
    a = wf(base(), **{field: values[0]})
    b = wf(base(), **{field: values[1]})
    assert diff_definitions(a, b).identical
