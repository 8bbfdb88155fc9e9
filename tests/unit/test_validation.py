"""The validation error corpus: each bad definition gets its stable code and path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.engine.validation import parse_document, validate_definition
from shared.errors import DefinitionInvalid, InputInvalid
from shared.steps import default_registry

REGISTRY = default_registry()
GOOD: dict[str, Any] = {
    "name": "good",
    "steps": [
        {
            "id": "start",
            "type": "transform",
            "config": {"set": {"x": "${input.x}"}},
            "nextSteps": ["route"],
        },
        {
            "id": "route",
            "type": "branch",
            "nextSteps": ["call", "done"],
            "config": {"cases": [{"when": "vars.x > 1", "next": "call"}], "default": "done"},
        },
        {
            "id": "call",
            "type": "http",
            "config": {"url": "https://example.com/${vars.x}"},
            "nextSteps": ["done"],
        },
        {"id": "done", "type": "transform", "config": {"output": "${vars.x}"}},
    ],
}


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(GOOD)
    target = raw
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return raw


_DELETE = object()


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


LOOP = {
    "name": "loop",
    "steps": [
        {"id": "a", "type": "transform", "nextSteps": ["b"]},
        {
            "id": "b",
            "type": "branch",
            "nextSteps": ["a", "c"],
            "config": {"cases": [{"when": "true", "next": "a"}], "default": "c"},
        },
        {"id": "c", "type": "transform"},
    ],
}
ESCAPE = {
    "name": "escape",
    "steps": [
        {
            "id": "fan",
            "type": "parallel",
            "nextSteps": ["after"],
            "config": {"branches": [{"name": "x", "start": "x1"}]},
        },
        {"id": "x1", "type": "transform", "nextSteps": ["after"]},
        {"id": "after", "type": "transform"},
    ],
}

CORPUS: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing name", mutate(["name"], _DELETE), "FIELD_REQUIRED", "/name"),
    ("no steps", mutate(["steps"], []), "TOO_SHORT", "/steps"),
    ("unknown top-level field", mutate(["colour"], "red"), "UNKNOWN_FIELD", "/colour"),
    ("wrong type", mutate(["tags"], "urgent"), "FIELD_TYPE", "/tags"),
    ("bad step id", mutate(["steps", 0, "id"], "has space"), "INVALID_FORMAT", "/steps/0/id"),
    ("duplicate step id", mutate(["steps", 3, "id"], "call"), "DUPLICATE_STEP_ID", "/steps/3/id"),
    (
        "missing next step",
        mutate(["steps", 2, "nextSteps"], ["nowhere"]),
        "UNKNOWN_NEXT_STEP",
        "/steps/2/nextSteps/0",
    ),
    ("unknown start", mutate(["startStep"], "nope"), "UNKNOWN_START_STEP", "/startStep"),
    (
        "unknown type",
        mutate(["steps", 2, "type"], "teleport"),
        "UNKNOWN_STEP_TYPE",
        "/steps/2/type",
    ),
    (
        "reserved type",
        mutate(["steps", 2, "type"], "decision"),
        "STEP_TYPE_UNAVAILABLE",
        "/steps/2/type",
    ),
    ("llm reserved", mutate(["steps", 2, "type"], "llm"), "STEP_TYPE_UNAVAILABLE", "/steps/2/type"),
    ("unreachable", mutate(["steps", 0, "nextSteps"], ["done"]), "UNREACHABLE_STEP", "/steps/1"),
    ("unbounded loop", LOOP, "UNBOUNDED_LOOP", "/steps/0/nextSteps"),
    (
        "two next steps on a transform",
        mutate(["steps", 0, "nextSteps"], ["route", "done"]),
        "MULTIPLE_NEXT_STEPS",
        "/steps/0/nextSteps",
    ),
    (
        "branch target not in nextSteps",
        mutate(["steps", 1, "nextSteps"], ["done"]),
        "BRANCH_TARGET_NOT_IN_NEXT_STEPS",
        "/steps/1/config/cases/0/next",
    ),
    (
        "CEL syntax",
        mutate(["steps", 1, "config", "cases", 0, "when"], "vars.x >"),
        "EXPRESSION_SYNTAX",
        "/steps/1/config/cases/0/when",
    ),
    (
        "CEL unknown root",
        mutate(["steps", 1, "config", "cases", 0, "when"], "os.system"),
        "EXPRESSION_UNKNOWN_VARIABLE",
        "/steps/1/config/cases/0/when",
    ),
    (
        "template in config",
        mutate(["steps", 2, "config", "url"], "https://x/${vars.}"),
        "EXPRESSION_SYNTAX",
        "/steps/2/config/url",
    ),
    (
        "unterminated template",
        mutate(["steps", 0, "config", "set", "x"], "${input.x"),
        "TEMPLATE_SYNTAX",
        "/steps/0/config/set/x",
    ),
    (
        "unknown config field",
        mutate(["steps", 2, "config", "verb"], "GET"),
        "UNKNOWN_FIELD",
        "/steps/2/config/verb",
    ),
    (
        "missing config field",
        mutate(["steps", 2, "config"], {}),
        "FIELD_REQUIRED",
        "/steps/2/config/url",
    ),
    (
        "bad http method",
        mutate(["steps", 2, "config", "method"], "FETCH"),
        "INVALID_VALUE",
        "/steps/2/config/method",
    ),
    (
        "fallback without step",
        mutate(["steps", 2, "onError"], {"strategy": "fallback"}),
        "INVALID_VALUE",
        "/steps/2/onError",
    ),
    (
        "unknown fallback",
        mutate(["steps", 2, "onError"], {"strategy": "fallback", "fallbackStep": "ghost"}),
        "UNKNOWN_FALLBACK_STEP",
        "/steps/2/onError/fallbackStep",
    ),
    (
        "bad strategy",
        mutate(["steps", 2, "onError"], {"strategy": "ignore"}),
        "INVALID_VALUE",
        "/steps/2/onError/strategy",
    ),
    (
        "retry attempts out of range",
        mutate(["steps", 2, "onError"], {"retry": {"maxAttempts": 0}}),
        "INVALID_VALUE",
        "/steps/2/onError/retry/maxAttempts",
    ),
    (
        "condition syntax",
        mutate(["steps", 2, "conditions"], [{"expression": "(("}]),
        "EXPRESSION_SYNTAX",
        "/steps/2/conditions/0/expression",
    ),
    (
        "bad cron",
        mutate(["trigger"], {"type": "schedule", "cron": "every day"}),
        "INVALID_CRON",
        "/trigger/cron",
    ),
    (
        "bad timezone",
        mutate(["trigger"], {"type": "schedule", "cron": "0 8 * * *", "timezone": "Mars/Olympus"}),
        "INVALID_TIMEZONE",
        "/trigger/timezone",
    ),
    ("bad trigger type", mutate(["trigger"], {"type": "telepathy"}), "INVALID_VALUE", "/trigger"),
    (
        "event filter root",
        mutate(["trigger"], {"type": "event", "topic": "t", "filter": "vars.x == 1"}),
        "EXPRESSION_UNKNOWN_VARIABLE",
        "/trigger/filter",
    ),
    ("body escapes scope", ESCAPE, "STEP_IN_MULTIPLE_SCOPES", "/steps/2"),
    (
        "map items not CEL",
        {
            "name": "m",
            "steps": [
                {"id": "m", "type": "map", "config": {"items": "[1,", "start": "w"}},
                {"id": "w", "type": "transform"},
            ],
        },
        "EXPRESSION_SYNTAX",
        "/steps/0/config/items",
    ),
    (
        "map body unknown",
        {
            "name": "m",
            "steps": [{"id": "m", "type": "map", "config": {"items": "[1]", "start": "zz"}}],
        },
        "UNKNOWN_STEP_REFERENCE",
        "/steps/0/config/start",
    ),
    (
        "parallel duplicate branch names",
        {
            "name": "p",
            "steps": [
                {
                    "id": "p",
                    "type": "parallel",
                    "config": {
                        "branches": [{"name": "a", "start": "x"}, {"name": "a", "start": "x"}]
                    },
                },
                {"id": "x", "type": "transform"},
            ],
        },
        "INVALID_VALUE",
        "/steps/0/config",
    ),
    (
        "wait needs one of",
        mutate(["steps", 3], {"id": "done", "type": "wait", "config": {}}),
        "INVALID_VALUE",
        "/steps/3/config",
    ),
    (
        "too many steps",
        {"name": "big", "steps": [{"id": f"s{i}", "type": "transform"} for i in range(501)]},
        "TOO_MANY_STEPS",
        "/steps",
    ),
    ("too large", mutate(["description"], "x" * 600_000), "DEFINITION_TOO_LARGE", ""),
    ("too deep", mutate(["variables"], {"a": _nested(40)}), "TOO_DEEP", ""),
    # Start controls (flow control part 3): bounds, periods, keys, combinations.
    (
        "rate limit 0",
        mutate(["rateLimit"], {"limit": 0, "period": 60}),
        "INVALID_VALUE",
        "/rateLimit/limit",
    ),
    (
        "rate limit huge",
        mutate(["rateLimit"], {"limit": 10**9, "period": 60}),
        "INVALID_VALUE",
        "/rateLimit/limit",
    ),
    (
        "rate period unit",
        mutate(["rateLimit"], {"limit": 1, "period": "2w"}),
        "INVALID_VALUE",
        "/rateLimit/period",
    ),
    (
        "rate period short",
        mutate(["rateLimit"], {"limit": 1, "period": 0.5}),
        "INVALID_VALUE",
        "/rateLimit/period",
    ),
    (
        "rate mode",
        mutate(["rateLimit"], {"limit": 1, "period": 1, "mode": "drop"}),
        "INVALID_VALUE",
        "/rateLimit/mode",
    ),
    (
        "rate key vars",
        mutate(["rateLimit"], {"limit": 1, "period": 1, "key": "vars.x"}),
        "EXPRESSION_UNKNOWN_VARIABLE",
        "/rateLimit/key",
    ),
    (
        "throttle period year",
        mutate(["throttle"], {"limit": 1, "period": "400d"}),
        "INVALID_VALUE",
        "/throttle/period",
    ),
    (
        "throttle burst",
        mutate(["throttle"], {"limit": 1, "period": 1, "burst": 0}),
        "INVALID_VALUE",
        "/throttle/burst",
    ),
    (
        "throttle key syntax",
        mutate(["throttle"], {"limit": 1, "period": 1, "key": "input.("}),
        "EXPRESSION_SYNTAX",
        "/throttle/key",
    ),
    (
        "singleton mode",
        mutate(["singleton"], {"mode": "queue"}),
        "INVALID_VALUE",
        "/singleton/mode",
    ),
    (
        "singleton key",
        mutate(["singleton"], {"key": "steps.x"}),
        "EXPRESSION_UNKNOWN_VARIABLE",
        "/singleton/key",
    ),
    ("debounce missing period", mutate(["debounce"], {}), "FIELD_REQUIRED", "/debounce/period"),
    (
        "debounce unknown",
        mutate(["debounce"], {"period": 5, "wait": 1}),
        "UNKNOWN_FIELD",
        "/debounce/wait",
    ),
    (
        "debounce and throttle",
        {**GOOD, "debounce": {"period": 5}, "throttle": {"limit": 1, "period": 5}},
        "START_CONTROLS_CONFLICT",
        "/throttle",
    ),
]


def test_good_definition_is_valid() -> None:
    definition = validate_definition(GOOD, REGISTRY)
    assert [s.id for s in definition.steps] == ["start", "route", "call", "done"]


@pytest.mark.parametrize(
    ("raw", "code", "path"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_bad_definition_gets_code_and_path(raw: dict[str, Any], code: str, path: str) -> None:
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(raw, REGISTRY)
    found = [(i.code, i.path) for i in caught.value.issues]
    assert (code, path) in found, found
    body = caught.value.to_dict()
    assert body["code"] == "VALIDATION_FAILED"
    assert all(set(e) == {"code", "message", "path"} and e["message"] for e in body["errors"])


@pytest.mark.parametrize(
    ("period", "seconds"),
    [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("1.5d", 129_600.0)],
)
def test_start_control_periods_are_seconds_or_a_number_with_a_unit(
    period: Any, seconds: float
) -> None:
    raw = {
        **GOOD,
        "throttle": {"limit": 2, "period": period},
        "rateLimit": {"limit": 1, "period": period, "key": "input.customer", "mode": "queue"},
        "singleton": {"key": "trigger.type", "mode": "cancelRunning"},
    }
    definition = validate_definition(raw, REGISTRY)
    assert definition.throttle is not None and definition.rate_limit is not None
    assert definition.throttle.period == definition.rate_limit.period == seconds


def test_every_issue_is_reported_at_once() -> None:
    raw = mutate(["steps", 2, "type"], "teleport")
    raw["steps"][0]["nextSteps"] = ["route", "ghost"]
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(raw, REGISTRY)
    codes = {i.code for i in caught.value.issues}
    assert {"UNKNOWN_STEP_TYPE", "UNKNOWN_NEXT_STEP", "MULTIPLE_NEXT_STEPS"} <= codes


def test_bounded_loop_is_valid() -> None:
    raw = copy.deepcopy(LOOP)
    raw["steps"][0]["maxIterations"] = 5
    assert validate_definition(raw, REGISTRY).steps[0].max_iterations == 5


@pytest.mark.parametrize("text", ["{not json", "name: [unclosed", "- just\n- a list\n", "42"])
def test_unparsable_documents(text: str) -> None:
    with pytest.raises(InputInvalid) as caught:
        parse_document(text, "wf.yaml")
    assert caught.value.code == "INVALID_FORMAT"


def test_yaml_and_json_parse_to_the_same_definition() -> None:
    yaml_text = "name: y\nsteps:\n  - id: a\n    type: transform\n"
    json_text = '{"name": "y", "steps": [{"id": "a", "type": "transform"}]}'
    assert parse_document(yaml_text, "a.yaml") == parse_document(json_text, "a.json")


# -- issue 11, item 6: what validation could catch, and every problem of a config at once


def _one_step(step: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as refused:
        validate_definition({"name": "x", "steps": [step]}, default_registry())
    return [(issue.code, issue.path) for issue in refused.value.issues]


@pytest.mark.parametrize(
    ("config", "code", "path"),
    [
        ({"seconds": "ten"}, "WAIT_SECONDS_INVALID", "/steps/0/config/seconds"),
        ({"seconds": "10 s"}, "WAIT_SECONDS_INVALID", "/steps/0/config/seconds"),
        ({"until": "tomorrow"}, "INVALID_TIME", "/steps/0/config/until"),
    ],
)
def test_wait_durations_and_times_that_cannot_work_are_refused(
    config: dict[str, Any], code: str, path: str
) -> None:
    assert (code, path) in _one_step({"id": "w", "type": "wait", "config": config})


@pytest.mark.parametrize(
    "good",
    [
        {"seconds": "${input.delay}"},
        {"seconds": "2.5"},
        {"until": "2030-01-01T00:00:00Z"},
        {"until": "${input.at}"},
    ],
)
def test_wait_templates_numbers_and_times_are_accepted(good: dict[str, Any]) -> None:
    step = {"id": "w", "type": "wait", "config": good}
    validate_definition({"name": "x", "steps": [step]}, default_registry())


@pytest.mark.parametrize("items", ["'a,b,c'", "42", "{'a': 1}", "true"])
def test_map_items_that_are_a_constant_other_than_a_list_are_refused(items: str) -> None:
    step = {
        "id": "m",
        "type": "map",
        "config": {"items": items, "start": "body"},
        "nextSteps": [],
    }
    body = {"id": "body", "type": "transform", "config": {"set": {"x": 1}}}
    with pytest.raises(DefinitionInvalid) as refused:
        validate_definition({"name": "x", "steps": [step, body]}, default_registry())
    found = [(issue.code, issue.path) for issue in refused.value.issues]
    assert ("MAP_ITEMS_NOT_A_LIST", "/steps/0/config/items") in found


def test_one_config_error_does_not_hide_the_others() -> None:
    step = {
        "id": "m",
        "type": "map",
        "config": {"items": "input.orders.map(", "start": "nowhere", "concurrency": 0},
    }
    found = _one_step(step)
    assert ("INVALID_VALUE", "/steps/0/config/concurrency") in found or any(
        path == "/steps/0/config/concurrency" for _, path in found
    )
    assert ("EXPRESSION_SYNTAX", "/steps/0/config/items") in found
    assert ("UNKNOWN_STEP_REFERENCE", "/steps/0/config/start") in found
