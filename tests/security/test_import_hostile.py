"""Hostile import sources: huge, deeply nested, aliased (billion laughs), expression
bombs, inlining bombs and code-looking expressions. Every refusal is an InputInvalid
with a stable IMPORT_* code (a 4xx at the API edge); nothing is ever evaluated."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from shared.errors import InputInvalid
from shared.importers import translate
from shared.importers.result import MAX_SOURCE_BYTES

BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
main:
  steps:
    - x:
        assign:
          - v: *d
"""


def _refused(fmt: str, source: Any) -> str:
    with pytest.raises(InputInvalid) as caught:
        translate(fmt, source)
    return caught.value.code


def test_yaml_aliases_are_refused_before_anything_is_built() -> None:
    assert _refused("gcw", BILLION_LAUGHS) == "IMPORT_YAML_REFUSED"


@pytest.mark.parametrize("fmt", ["gcw", "asl"])
def test_a_source_over_the_size_limit_is_refused(fmt: str) -> None:
    text = '{"StartAt": "a", "Comment": "' + "x" * MAX_SOURCE_BYTES + '"}'
    assert _refused(fmt, text) == "IMPORT_TOO_LARGE"


@pytest.mark.parametrize("fmt", ["gcw", "asl"])
def test_deep_json_nesting_is_refused_without_a_recursion_error(fmt: str) -> None:
    assert _refused(fmt, "[" * 50_000 + "]" * 50_000) in ("IMPORT_TOO_DEEP", "IMPORT_SYNTAX")
    assert _refused(fmt, '{"a":' * 150 + "1" + "}" * 150) == "IMPORT_TOO_DEEP"


def test_deep_yaml_nesting_is_refused() -> None:
    assert _refused("gcw", "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200))) in (
        "IMPORT_TOO_DEEP",
        "IMPORT_SYNTAX",
    )
    assert _refused("gcw", "x: " + "[" * 300 + "]" * 300) == "IMPORT_TOO_DEEP"


def test_an_object_with_too_many_values_is_refused() -> None:
    assert _refused("asl", {"StartAt": "a", "States": {f"s{i}": i for i in range(60_000)}}) == (
        "IMPORT_TOO_LARGE"
    )


def test_subworkflows_calling_each_other_cannot_multiply_the_steps() -> None:
    """Each level calls the next ten times: inlined, 10**6 steps; refused at the cap."""
    document: dict[str, Any] = {"main": {"steps": [{f"c{i}": {"call": "w1"}} for i in range(10)]}}
    for level in range(1, 7):
        document[f"w{level}"] = {
            "steps": [{f"c{i}": {"call": f"w{level + 1}"}} for i in range(10)]
            if level < 6
            else [{"s": {"assign": [{"x": 1}]}}]
        }
    started = time.monotonic()
    assert _refused("gcw", document) == "IMPORT_TOO_MANY_STEPS"
    assert time.monotonic() - started < 10


def test_recursion_between_subworkflows_is_reported_not_followed() -> None:
    document = {
        "main": {"steps": [{"c": {"call": "a"}}]},
        "a": {"steps": [{"c": {"call": "b"}}]},
        "b": {"steps": [{"c": {"call": "a"}}]},
    }
    result = translate("gcw", document)
    assert "GCW_RECURSION" in [u.code for u in result.unsupported]


@pytest.mark.parametrize(
    "expression",
    [
        "${" + "(" * 5000 + "1" + ")" * 5000 + "}",
        "${" + "not " * 3000 + "true}",
        "${" + "-" * 3000 + "1}",
        "${" + "a+" * 3000 + "1}",
    ],
)
def test_expression_bombs_are_reported_not_crashing(expression: str) -> None:
    result = translate("gcw", {"main": {"steps": [{"s": {"assign": [{"x": expression}]}}]}})
    assert result.unsupported and result.unsupported[0].path == "/main/steps/0/s/assign/0/x"


@pytest.mark.parametrize(
    "expression",
    [
        "${__import__('os').system('id')}",
        "${sys.get_env('HOME')}",
        "${http.get('https://evil.test')}",
        "${json.decode(x)}",
        "${eval('1')}",
    ],
)
def test_code_looking_expressions_are_never_evaluated_only_reported(expression: str) -> None:
    result = translate("gcw", {"main": {"steps": [{"s": {"assign": [{"x": expression}]}}]}})
    assert [u.code for u in result.unsupported] in (["GCW_FUNCTION"], ["GCW_EXPRESSION_SYNTAX"])
    assert "__import__" not in json.dumps(result.definition["steps"])


def test_asl_choice_rules_nested_too_deep_are_reported() -> None:
    rule: dict[str, Any] = {"Variable": "$.a", "BooleanEquals": True}
    for _ in range(40):
        rule = {"Not": rule}
    machine = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{**rule, "Next": "D"}], "Default": "D"},
            "D": {"Type": "Succeed"},
        },
    }
    result = translate("asl", json.dumps(machine))
    assert [u.code for u in result.unsupported] == ["ASL_CHOICE"]


def test_asl_jsonpath_filters_and_huge_names_are_bounded() -> None:
    machine = {
        "StartAt": "x" * 5000,
        "States": {
            "x" * 5000: {"Type": "Pass", "Parameters": {"a.$": "$..[?(@.price > 10)]"}, "End": True}
        },
    }
    result = translate("asl", json.dumps(machine))
    assert result.valid, result.issues
    assert all(len(s["id"]) <= 64 for s in result.definition["steps"])
    assert [u.code for u in result.unsupported] == ["ASL_JSONPATH"]


def test_colliding_names_get_distinct_ids() -> None:
    machine = {
        "StartAt": "a b",
        "States": {"a b": {"Type": "Pass", "Next": "a_b"}, "a_b": {"Type": "Pass", "End": True}},
    }
    result = translate("asl", json.dumps(machine))
    assert result.valid and len({s["id"] for s in result.definition["steps"]}) == 3


def test_unknown_format_and_bad_names_are_refused() -> None:
    assert _refused("bpmn", "{}") == "IMPORT_FORMAT"
    with pytest.raises(InputInvalid) as caught:
        translate("asl", '{"StartAt": "a", "States": {}}', name="x" * 300)
    assert caught.value.code == "IMPORT_NAME"


def test_non_text_and_non_object_sources_are_refused() -> None:
    assert _refused("asl", b"\xff\xfe") == "IMPORT_NOT_TEXT"
    assert _refused("asl", "[1, 2]") == "IMPORT_NOT_OBJECT"
    assert _refused("gcw", "a: [") == "IMPORT_SYNTAX"
