"""Translated workflows run on the local engine, and give what the source engine's
documented semantics give.

Cloud Workflows: public corpus samples (their expected results are the ones their own
comments document); the ``https://example.com`` / ``https://www.example.com`` hosts are
pointed at a local test server. Step Functions: the corpus sample that has no AWS
service call, and small state machines written here after the ASL specification's
examples (HTTP Task, Map, Parallel, Retry, Catch, Wait, intrinsic functions), calling
the local test server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _runner import LAST_STEPS, http_server, request_counts, run_definition

from shared.importers import translate
from shared.models import ExecutionStatus

CORPUS = Path(__file__).resolve().parent / "corpus"


def _gcw(name: str, url: str = "https://unused.invalid", path: str = "") -> dict[str, Any]:
    text = (CORPUS / "gcw" / name).read_text()
    text = text.replace("https://www.example.com/endpoint", url + "/echo")
    text = text.replace("https://example.com/someapi", url + path)
    text = text.replace("https://example.com", url)
    result = translate("gcw", text)
    assert result.valid, result.issues
    return result.definition


@pytest.mark.parametrize(
    ("sample", "data", "expected"),
    [
        ("iterate_map.workflows.yaml", {}, 60),  # "sum is 60"
        ("iterate_for_range.workflows.yaml", {}, 45),  # "sum is 45"
        ("step_switch_embedded.workflows.yaml", {}, "increase a to:8"),
        ("subworkflow.workflows.yaml", {}, "Hello Kristof"),
        ("expression.workflows.yaml", {}, "Current temperature is 80.6 F"),
        ("args.workflows.yaml", {"firstName": "Ada", "lastName": "Lovelace"}, "Hello Ada Lovelace"),
        ("array.workflows.yaml", {}, {"concat_result": "foobar"}),
    ],
)
async def test_gcw_sample_runs_to_its_documented_result(
    sample: str, data: dict[str, Any], expected: Any
) -> None:
    execution = await run_definition(_gcw(sample), data)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == expected


async def test_gcw_http_get_returns_the_response_body() -> None:
    with http_server() as url:
        execution = await run_definition(_gcw("http_get.workflows.yaml", url), {}, url)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result["method"] == "GET"
    assert (
        "some_val=Hello" in execution.result["query"]
        and "another_val=123" in execution.result["query"]
    )


async def test_gcw_except_branches_on_the_http_status() -> None:
    """error_catch: a 404 goes to url_not_found (the sample's documented path)."""
    with http_server() as url:
        definition = _gcw("error_catch.workflows.yaml", url, "/missing")
        execution = await run_definition(definition, {}, url)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == "Sorry, URL wasn't found"


async def test_gcw_default_retry_retries_503_until_success() -> None:
    with http_server() as url:
        definition = _gcw("error_retry.workflows.yaml", url, "/flaky")
        execution = await run_definition(definition, {}, url)
        counts = request_counts()
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert counts["/flaky"] == 3  # 503, 503, then 200


async def test_gcw_parallel_branches_share_their_results() -> None:
    with http_server() as url:
        definition = _gcw("parallel_branch.workflows.yaml", url)
        execution = await run_definition(definition, {"userId": "7", "notificationId": "9"}, url)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.variables["user"]["code"] == 200
    assert execution.variables["user"]["body"] == {"path": "/users/7", "method": "GET"}
    assert execution.variables["notification"]["body"]["path"] == "/notification/9"


# -- Step Functions -------------------------------------------------------------------------


def _asl(document: Any) -> dict[str, Any]:
    result = translate("asl", document if isinstance(document, str) else json.dumps(document))
    assert result.valid, result.issues
    assert not result.unsupported, result.unsupported
    return result.definition


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ({"type": "Public", "value": 5}, "NEXT_STATE_ONE"),
        ({"type": "Private", "value": 0}, "NEXT_STATE_TWO"),
        ({"type": "Private", "value": 25}, "NEXT_STATE_TWO"),
        ({"type": "Private", "value": 7}, "DEFAULT_STATE"),
    ],
)
async def test_asl_choice_sample_takes_the_documented_path(
    data: dict[str, Any], state: str
) -> None:
    text = (CORPUS / "asl" / "path-based-on-data.statemachine.asl.json").read_text()
    definition = _asl(text)
    execution = await run_definition(definition, data)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == data  # Pass states hand their input on
    assert LAST_STEPS[-1] == state


HTTP_MAP = {
    "StartAt": "Get",
    "States": {
        "Get": {
            "Type": "Task",
            "Resource": "arn:aws:states:::http:invoke",
            "Parameters": {"ApiEndpoint.$": "States.Format('{}/items', $.base)", "Method": "GET"},
            "ResultSelector": {"items.$": "$.ResponseBody.items"},
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemSelector": {"id.$": "$$.Map.Item.Value.id", "n.$": "$$.Map.Item.Index"},
            "ItemProcessor": {
                "StartAt": "Double",
                "States": {
                    "Double": {
                        "Type": "Pass",
                        "Parameters": {"id.$": "$.id", "double.$": "States.MathAdd($.id, $.id)"},
                        "End": True,
                    }
                },
            },
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


async def test_asl_http_task_then_map_with_item_selector_and_intrinsics() -> None:
    with http_server() as url:
        execution = await run_definition(_asl(HTTP_MAP), {"base": url}, url)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == [{"id": 1, "double": 2}, {"id": 2, "double": 4}]


def _call(path: str, **extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {"ApiEndpoint.$": f"States.Format('{{}}{path}', $.base)", "Method": "GET"},
        **extra,
    }


async def test_asl_retry_with_backoff_then_success() -> None:
    machine = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": _call(
                "/flaky",
                Retry=[
                    {
                        "ErrorEquals": ["States.ALL"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 3,
                        "BackoffRate": 1.0,
                    }
                ],
                OutputPath="$.ResponseBody",
                End=True,
            )
        },
    }
    with http_server() as url:
        execution = await run_definition(_asl(machine), {"base": url}, url)
        counts = request_counts()
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == {"attempt": 3} and counts["/flaky"] == 3


async def test_asl_catch_sends_the_error_to_the_handler() -> None:
    machine = {
        "StartAt": "Missing",
        "States": {
            "Missing": _call(
                "/missing",
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handle"}],
                Next="Unreached",
            ),
            "Unreached": {"Type": "Pass", "Result": "wrong", "End": True},
            "Handle": {"Type": "Pass", "Parameters": {"error.$": "$.Error"}, "End": True},
        },
    }
    with http_server() as url:
        execution = await run_definition(_asl(machine), {"base": url}, url)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == {"error": "HTTP_404"}


async def test_asl_parallel_gives_the_branch_outputs_in_order_and_wait_keeps_the_state() -> None:
    machine = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "A",
                        "States": {
                            "A": _call("/items/3", OutputPath="$.ResponseBody.price", End=True)
                        },
                    },
                    {
                        "StartAt": "B",
                        "States": {"B": {"Type": "Pass", "Result": {"fixed": True}, "End": True}},
                    },
                ],
                "Next": "Pause",
            },
            "Pause": {"Type": "Wait", "Seconds": 0, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }
    with http_server() as url:
        execution = await run_definition(_asl(machine), {"base": url}, url)
    assert execution.status == ExecutionStatus.SUCCEEDED, execution.error
    assert execution.result == [30, {"fixed": True}]


async def test_asl_fail_state_fails_the_execution_with_its_error_and_cause() -> None:
    machine = {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Fine"}],
                "Default": "Broken",
            },
            "Fine": {"Type": "Pass", "End": True},
            "Broken": {"Type": "Fail", "Error": "NotOk", "Cause": "ok was false"},
        },
    }
    result = translate("asl", json.dumps(machine))
    assert [w.code for w in result.warnings] == ["ASL_FAIL"]
    execution = await run_definition(result.definition, {"ok": False})
    assert execution.status == ExecutionStatus.FAILED
    assert "NotOk: ok was false" in str(execution.error)
    fine = await run_definition(result.definition, {"ok": True})
    assert fine.status == ExecutionStatus.SUCCEEDED and fine.result == {"ok": True}
