"""Step Functions constructs, one by one: what each becomes, and what is reported."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import InputInvalid
from shared.importers import ImportResult, translate
from shared.importers.asl import intrinsic, json_path, jsonata
from shared.importers.result import Unsupported


def asl(states: dict[str, Any], start: str | None = None, **top: Any) -> ImportResult:
    document = {"StartAt": start or next(iter(states)), "States": states, **top}
    result = translate("asl", json.dumps(document))
    assert result.valid, result.issues
    return result


def steps(result: ImportResult) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in result.definition["steps"]}


def found(result: ImportResult) -> list[tuple[str, str]]:
    return [(f.code, f.path) for f in [*result.warnings, *result.unsupported]]


@pytest.mark.parametrize(
    ("path", "cel"),
    [
        ("$", "prev"),
        ("$.a.b", "prev.a.b"),
        ("$.a[0]", "prev.a[0]"),
        ("$['x y']", 'prev["x y"]'),
        ("$$.Execution.Id", "execution.id"),
        ("$$.Map.Item.Value.id", "item.id"),
        ("$$.Map.Item.Index", "index"),
    ],
)
def test_reference_paths(path: str, cel: str) -> None:
    assert json_path(path, "prev") == cel


@pytest.mark.parametrize("path", ["$.a[*]", "$..a", "$.a[?(@.b)]", "$$.Task.Token", "a.b"])
def test_other_paths_are_unsupported(path: str) -> None:
    with pytest.raises(Unsupported):
        json_path(path, "prev")


@pytest.mark.parametrize(
    ("text", "cel"),
    [
        (
            "States.Format('Hi {} of {}', $.name, $.n)",
            '("Hi " + string(prev.name) + " of " + string(prev.n))',
        ),
        ("States.Array($.a, 2)", "[prev.a, 2]"),
        ("States.MathAdd($.a, 1)", "(prev.a + 1)"),
        ("States.ArrayLength($.xs)", "size(prev.xs)"),
        ("States.ArrayGetItem($.xs, 0)", "prev.xs[0]"),
        ("States.ArrayContains($.xs, 'a')", '("a" in prev.xs)'),
    ],
)
def test_intrinsic_functions_that_map(text: str, cel: str) -> None:
    assert intrinsic(text, "prev") == cel


@pytest.mark.parametrize(
    "text",
    [
        "States.StringToJson($.s)",
        "States.JsonToString($.o)",
        "States.UUID()",
        "States.Hash($.a, 'SHA-1')",
        "States.StringSplit($.s, ',')",
        "States.Base64Encode($.s)",
    ],
)
def test_intrinsic_functions_without_an_equivalent_are_unsupported(text: str) -> None:
    with pytest.raises(Unsupported):
        intrinsic(text, "prev")


@pytest.mark.parametrize(
    ("text", "cel"),
    [
        ("$states.input.a + 1", "prev.a + 1"),
        ("$states.input.s & 'x'", 'prev.s + "x"'),
        ("$states.input.n > 3 and $flag = true", "prev.n > 3 && vars.flag == true"),
    ],
)
def test_simple_jsonata(text: str, cel: str) -> None:
    assert jsonata(text, "prev") == cel


def test_jsonata_functions_are_unsupported() -> None:
    with pytest.raises(Unsupported):
        jsonata("$count($states.input.xs)", "prev")


def test_the_machine_starts_from_the_execution_input() -> None:
    result = asl({"P": {"Type": "Pass", "End": True}})
    first = result.definition["steps"][0]
    assert first["config"]["output"] == "${input}" and first["nextSteps"] == ["P"]
    assert result.clean


def test_pass_with_result_parameters_input_and_output_paths() -> None:
    result = asl(
        {
            "A": {"Type": "Pass", "Result": {"x": 1}, "Next": "B"},
            "B": {
                "Type": "Pass",
                "InputPath": "$.x",
                "Parameters": {"v.$": "$", "k": "lit"},
                "Next": "C",
            },
            "C": {"Type": "Pass", "OutputPath": "$.v", "ResultPath": None, "End": True},
        }
    )
    found_steps = steps(result)
    assert found_steps["A"]["config"]["output"] == {"x": 1}
    assert found_steps["B"]["config"]["output"] == {"v": "${prev.x}", "k": "lit"}
    assert found_steps["C"]["config"]["output"] == "${(prev).v}"


def test_result_path_into_a_field_is_unsupported_with_its_path() -> None:
    result = translate(
        "asl",
        json.dumps(
            {
                "StartAt": "A",
                "States": {"A": {"Type": "Pass", "Result": 1, "ResultPath": "$.r", "End": True}},
            }
        ),
    )
    assert found(result) == [("ASL_RESULT_PATH", "/States/A/ResultPath")]


def test_http_task_becomes_an_http_step_and_result_selector_reads_the_aws_shape() -> None:
    result = asl(
        {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {
                    "ApiEndpoint": "https://api.test/x",
                    "Method": "POST",
                    "Headers": {"A": "b"},
                    "QueryParameters": {"q.$": "$.q"},
                    "RequestBody": {"k.$": "$.k"},
                    "Authentication": {"ConnectionArn": "arn:x"},
                },
                "ResultSelector": {"body.$": "$.ResponseBody"},
                "TimeoutSeconds": 12,
                "End": True,
            }
        }
    )
    call = steps(result)["Call"]
    assert call["type"] == "http" and call["timeoutSeconds"] == 12
    assert call["config"] == {
        "method": "POST",
        "url": "https://api.test/x",
        "headers": {"A": "b"},
        "query": {"q": "${prev.q}"},
        "body": {"k": "${prev.k}"},
    }
    assert steps(result)["Call_result"]["config"]["output"] == {"body": "${prev.ResponseBody}"}
    assert found(result) == [("ASL_HTTP_AUTH", "/States/Call")]


def test_other_resources_become_marked_placeholders() -> None:
    result = asl(
        {
            "L": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "f", "Payload.$": "$"},
                "End": True,
            }
        }
    )
    call = steps(result)["L"]
    assert call["name"].startswith("PLACEHOLDER") and "placeholder.invalid" in call["config"]["url"]
    assert found(result) == [("ASL_RESOURCE", "/States/L/Resource")]


def test_wait_for_task_token_becomes_wait_for_event() -> None:
    result = asl(
        {
            "W": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": "q"},
                "TimeoutSeconds": 3600,
                "End": True,
            }
        }
    )
    step = steps(result)["W"]
    assert step["type"] == "wait_for_event" and step["config"] == {
        "event": "task-token",
        "timeoutSeconds": 3600.0,
    }


@pytest.mark.parametrize(
    ("rule", "when"),
    [
        ({"Variable": "$.s", "StringEquals": "a"}, '(vars.wfStateC.s == "a")'),
        ({"Variable": "$.n", "NumericGreaterThan": 1}, "(double(vars.wfStateC.n) > double(1))"),
        (
            {"Variable": "$.n", "NumericLessThanEqualsPath": "$.m"},
            "(double(vars.wfStateC.n) <= double(vars.wfStateC.m))",
        ),
        ({"Variable": "$.b", "BooleanEquals": True}, "(vars.wfStateC.b == true)"),
        (
            {"Variable": "$.t", "TimestampLessThan": "2024-01-01T00:00:00Z"},
            '(timestamp(vars.wfStateC.t) < timestamp("2024-01-01T00:00:00Z"))',
        ),
        ({"Variable": "$.x", "IsPresent": True}, "has(vars.wfStateC.x)"),
        ({"Variable": "$.x", "IsNull": False}, "(vars.wfStateC.x != null)"),
        ({"Variable": "$.x", "IsString": True}, '(type(vars.wfStateC.x) == type(""))'),
        (
            {"Variable": "$.x", "IsNumeric": True},
            "((type(vars.wfStateC.x) == type(1) || type(vars.wfStateC.x) == type(1.0)))",
        ),
        (
            {"Variable": "$.s", "StringMatches": "log-*.txt"},
            'vars.wfStateC.s.matches("^log\\\\-.*\\\\.txt$")',
        ),
        (
            {
                "And": [
                    {"Variable": "$.a", "StringEquals": "x"},
                    {"Not": {"Variable": "$.b", "BooleanEquals": True}},
                ]
            },
            '((vars.wfStateC.a == "x") && !((vars.wfStateC.b == true)))',
        ),
        (
            {
                "Or": [
                    {"Variable": "$.a", "NumericEquals": 1},
                    {"Variable": "$.a", "NumericEquals": 2},
                ]
            },
            "((double(vars.wfStateC.a) == double(1)) || (double(vars.wfStateC.a) == double(2)))",
        ),
    ],
)
def test_choice_rules(rule: dict[str, Any], when: str) -> None:
    result = asl(
        {
            "C": {"Type": "Choice", "Choices": [{**rule, "Next": "D"}], "Default": "D"},
            "D": {"Type": "Pass", "End": True},
        }
    )
    branch = steps(result)["C_choice"]
    assert branch["config"]["cases"][0]["when"] == when
    assert steps(result)["C"]["config"]["set"] == {"wfStateC": "${prev}"}


@pytest.mark.parametrize(
    ("fields", "config"),
    [
        ({"Seconds": 5}, {"seconds": 5.0}),
        ({"Timestamp": "2030-01-01T00:00:00Z"}, {"until": "2030-01-01T00:00:00Z"}),
        ({"SecondsPath": "$.s"}, {"seconds": "${prev.s}"}),
        ({"TimestampPath": "$.t"}, {"until": "${prev.t}"}),
    ],
)
def test_wait_forms(fields: dict[str, Any], config: dict[str, Any]) -> None:
    result = asl({"W": {"Type": "Wait", **fields, "End": True}})
    assert steps(result)["W_wait"]["config"] == config
    assert steps(result)["W_out"]["config"]["output"] == "${vars.wfStateW}"


def test_retry_fields_and_catch_with_result_path() -> None:
    result = asl(
        {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {"ApiEndpoint": "https://a.test", "Method": "GET"},
                "Retry": [
                    {
                        "ErrorEquals": ["States.Timeout"],
                        "IntervalSeconds": 3,
                        "BackoffRate": 1.5,
                        "MaxAttempts": 4,
                        "MaxDelaySeconds": 20,
                        "JitterStrategy": "FULL",
                    }
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H", "ResultPath": "$"}],
                "End": True,
            },
            "H": {"Type": "Pass", "End": True},
        }
    )
    on_error = steps(result)["T"]["onError"]
    assert on_error["retry"] == {
        "maxAttempts": 5,
        "initialDelaySeconds": 3.0,
        "multiplier": 1.5,
        "jitter": 1.0,
        "maxDelaySeconds": 20.0,
        "retryOn": ["HTTP_TIMEOUT"],
    }
    assert on_error["strategy"] == "fallback"
    handler = steps(result)[on_error["fallbackStep"]]
    assert handler["config"]["output"] == {
        "Error": "${prev.error.code}",
        "Cause": "${prev.error.message}",
    }
    assert handler["nextSteps"] == ["H"]


def test_parallel_and_inline_map() -> None:
    result = asl(
        {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}},
                ],
                "Next": "M",
            },
            "M": {
                "Type": "Map",
                "ItemsPath": "$[0].xs",
                "MaxConcurrency": 4,
                "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}},
                "End": True,
            },
        }
    )
    found_steps = steps(result)
    assert found_steps["P"]["config"]["branches"] == [
        {"name": "b0", "start": "A"},
        {"name": "b1", "start": "B"},
    ]
    assert found_steps["P_result"]["config"]["output"] == "${[prev.b0, prev.b1]}"
    assert found_steps["M"]["config"] == {"items": "prev[0].xs", "start": "I", "concurrency": 4}


def test_distributed_map_is_reported() -> None:
    result = translate(
        "asl",
        json.dumps(
            {
                "StartAt": "M",
                "States": {
                    "M": {
                        "Type": "Map",
                        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"},
                        "ItemProcessor": {
                            "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                            "StartAt": "I",
                            "States": {"I": {"Type": "Pass", "End": True}},
                        },
                        "End": True,
                    }
                },
            }
        ),
    )
    assert ("ASL_DISTRIBUTED_MAP", "/States/M") in found(result)


def test_succeed_and_fail() -> None:
    result = asl(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "S"}],
                "Default": "F",
            },
            "S": {"Type": "Succeed"},
            "F": {"Type": "Fail", "Error": "E", "Cause": "c"},
        }
    )
    assert (
        steps(result)["S"]["nextSteps"] == []
        and steps(result)["F"]["config"]["output"] == '${int("E: c")}'
    )


def test_jsonata_state() -> None:
    result = asl(
        {"P": {"Type": "Pass", "Output": {"sum": "{% $states.input.a + 1 %}"}, "End": True}},
        QueryLanguage="JSONata",
    )
    assert steps(result)["P"]["config"]["output"] == {"sum": "${prev.a + 1}"}


def test_deploy_time_substitutions_are_made_inert_and_warned() -> None:
    result = asl({"P": {"Type": "Pass", "Result": {"arn": "${MyArn}"}, "End": True}})
    assert steps(result)["P"]["config"]["output"] == {"arn": "<MyArn>"}
    assert found(result) == [("ASL_DEFINITION_SUBSTITUTION", "/States/P/Result/arn")]


def test_not_a_state_machine_is_refused() -> None:
    with pytest.raises(InputInvalid) as caught:
        translate("asl", "{}")
    assert caught.value.code == "ASL_NOT_STATE_MACHINE"
