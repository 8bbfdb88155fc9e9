"""Decision and llm definitions that must be refused when saved: code and JSON pointer."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from _ai_defs import ai_node, tree, triage

from shared.composition import build_registry
from shared.engine.validation import validate_definition
from shared.errors import DefinitionInvalid

Mutate = Callable[[dict[str, Any]], None]
N = "/steps/0/config/nodes"


def base() -> dict[str, Any]:
    return triage(*tree(), {**ai_node(), "id": "ai"})


def _nodes(raw: dict[str, Any]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = raw["steps"][0]["config"]["nodes"]
    return nodes


def _set(index: int, **fields: Any) -> Mutate:
    return lambda raw: _nodes(raw)[index].update(fields)


def _drop(index: int, key: str) -> Mutate:
    return lambda raw: _nodes(raw)[index].pop(key)


def _config(**fields: Any) -> Mutate:
    return lambda raw: raw["steps"][0]["config"].update(fields)


def _reach_ai(raw: dict[str, Any]) -> None:
    _nodes(raw)[2]["else"] = "ai"


CASES: list[tuple[str, Mutate, str, str]] = [
    ("unknown target", _set(0, then="nowhere"), "DECISION_UNKNOWN_TARGET", f"{N}/0/then"),
    ("unknown lookup next", _set(1, next="gone"), "DECISION_UNKNOWN_TARGET", f"{N}/1/next"),
    (
        "unknown branch target",
        lambda r: (_reach_ai(r), _nodes(r)[3]["branches"].update(billing="x")),
        "DECISION_UNKNOWN_TARGET",
        f"{N}/3/branches/billing",
    ),
    ("unknown root", _config(root="nope"), "DECISION_UNKNOWN_ROOT", "/steps/0/config/root"),
    ("duplicate node", _set(1, id="vip"), "DECISION_DUPLICATE_NODE", f"{N}/1/id"),
    ("reserved id", _set(3, id="__end__"), "DECISION_RESERVED_NODE_ID", f"{N}/3/id"),
    (
        "node named like a step",
        _set(3, id="billing_queue"),
        "DECISION_AMBIGUOUS_TARGET",
        f"{N}/3/id",
    ),
    ("cycle", _set(2, then="vip"), "DECISION_CYCLE", f"{N}/2/then"),
    ("self loop", _set(1, next="sla"), "DECISION_CYCLE", f"{N}/1/next"),
    ("unreachable node", lambda r: None, "DECISION_UNREACHABLE_NODE", f"{N}/3"),
    ("bad CEL", _set(0, when="vars.tier =="), "EXPRESSION_SYNTAX", f"{N}/0/when"),
    (
        "unknown CEL root",
        _set(0, when="secrets.x == 1"),
        "EXPRESSION_UNKNOWN_VARIABLE",
        f"{N}/0/when",
    ),
    ("bad lookup key", _set(1, key="(("), "EXPRESSION_SYNTAX", f"{N}/1/key"),
    (
        "bad prompt template",
        lambda r: (_reach_ai(r), _nodes(r)[3].update(prompt="${vars.")),
        "TEMPLATE_SYNTAX",
        f"{N}/3/prompt",
    ),
    (
        "missing fallback",
        lambda r: (_reach_ai(r), _nodes(r)[3].pop("fallback")),
        "DECISION_MISSING_FALLBACK",
        f"{N}/3/fallback",
    ),
    (
        "unknown fallback",
        lambda r: (_reach_ai(r), _nodes(r)[3].update(fallback="tech_queue")),
        "DECISION_UNKNOWN_FALLBACK",
        f"{N}/3/fallback",
    ),
    (
        "one branch",
        lambda r: (_reach_ai(r), _nodes(r)[3].update(branches={"only": "tech_queue"})),
        "DECISION_TOO_FEW_BRANCHES",
        f"{N}/3/branches",
    ),
    (
        "bad label",
        lambda r: _nodes(r)[3]["branches"].update({"two words": "tech_queue"}),
        "INVALID_FORMAT",
        f"{N}/3/branches/two words",
    ),
    (
        "leaf outside nextSteps",
        lambda r: (
            _nodes(r).append({"id": "out", "type": "leaf", "next": "d"}) or _set(0, then="out")(r)
        ),
        "DECISION_LEAF_NOT_IN_NEXT_STEPS",
        f"{N}/4/next",
    ),
    (
        "leaf to unknown step",
        lambda r: (
            _nodes(r).append({"id": "out", "type": "leaf", "next": "ghost"})
            or _set(0, then="out")(r)
        ),
        "UNKNOWN_STEP_REFERENCE",
        f"{N}/4/next",
    ),
    ("unknown node type", _set(0, type="switch"), "INVALID_VALUE", f"{N}/0"),
    ("missing else", _drop(0, "else"), "FIELD_REQUIRED", f"{N}/0/else"),
    ("unknown node field", _set(1, unexpected=1), "UNKNOWN_FIELD", f"{N}/1/unexpected"),
    ("no nodes", _config(nodes=[]), "TOO_SHORT", f"{N}"),
    (
        "bad model option",
        lambda r: (_reach_ai(r), _nodes(r)[3].update(model={"temperature": 5})),
        "INVALID_VALUE",
        f"{N}/3/model/temperature",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "code", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision_corpus(mutate: Mutate, code: str, path: str) -> None:
    raw = copy.deepcopy(base())
    mutate(raw)
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(raw, build_registry())
    found = [(i.code, i.path) for i in caught.value.issues]
    assert (code, path) in found, found


def test_the_base_tree_with_the_ai_node_reached_is_valid() -> None:
    raw = base()
    _reach_ai(raw)
    validate_definition(raw, build_registry())


def llm(**config: Any) -> dict[str, Any]:
    return {
        "name": "l",
        "steps": [{"id": "w", "type": "llm", "config": {"prompt": "hi ${vars.x}", **config}}],
    }


L = "/steps/0/config"
LLM_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown tool", {"tools": ["shell"]}, "UNKNOWN_TOOL", f"{L}/tools/0"),
    (
        "side effects not allowed",
        {"tools": ["read_variables", "set_variable"]},
        "TOOL_HAS_SIDE_EFFECTS",
        f"{L}/tools/1",
    ),
    (
        "duplicate tool",
        {"tools": ["step_history", "step_history"]},
        "DUPLICATE_TOOL",
        f"{L}/tools/1",
    ),
    ("fetch without hosts", {"tools": ["http_fetch"]}, "FETCH_HOSTS_REQUIRED", f"{L}/fetchHosts"),
    (
        "publish without topics",
        {"tools": ["publish_message"], "allowSideEffects": True},
        "PUBLISH_TOPICS_REQUIRED",
        f"{L}/publishTopics",
    ),
    ("bad prompt", {"prompt": "${vars."}, "TEMPLATE_SYNTAX", f"{L}/prompt"),
    (
        "unsupported schema keyword",
        {"outputSchema": {"type": "object", "oneOf": []}},
        "SCHEMA_UNSUPPORTED",
        f"{L}/outputSchema/oneOf",
    ),
    (
        "bad schema type",
        {"outputSchema": {"type": "object", "properties": {"a": {"type": "text"}}}},
        "SCHEMA_INVALID",
        f"{L}/outputSchema/properties/a/type",
    ),
    ("setVars without schema", {"setVars": True}, "SET_VARS_NEEDS_SCHEMA", f"{L}/setVars"),
    (
        "setVars with a list schema",
        {"setVars": True, "outputSchema": {"type": "array"}},
        "SET_VARS_NEEDS_OBJECT",
        f"{L}/setVars",
    ),
    ("bad budget", {"budget": {"maxTokens": 0}}, "INVALID_VALUE", f"{L}/budget/maxTokens"),
    (
        "bad budget action",
        {"budget": {"onExceeded": "ignore"}},
        "INVALID_VALUE",
        f"{L}/budget/onExceeded",
    ),
    ("bad memory key", {"memory": {"key": "a b"}}, "INVALID_FORMAT", f"{L}/memory/key"),
]


@pytest.mark.parametrize(
    ("config", "code", "path"), [c[1:] for c in LLM_CASES], ids=[c[0] for c in LLM_CASES]
)
def test_llm_corpus(config: dict[str, Any], code: str, path: str) -> None:
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(llm(**config), build_registry())
    found = [(i.code, i.path) for i in caught.value.issues]
    assert (code, path) in found, found
