"""``wfe`` end to end: validation errors, runs, inspection, exit codes, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli import EXAMPLES, Wfe, cli_env

BAD_DEFINITIONS = {
    "not-a-definition.yaml": ("name: broken\nsteps: [\n  {id: a\n", "INVALID_FORMAT", "/"),
    "unknown-type.yaml": (
        "name: unknown-type\nsteps:\n"
        "  - {id: a, type: transform, nextSteps: [b]}\n"
        "  - {id: b, type: teleport}\n",
        "UNKNOWN_STEP_TYPE",
        "/steps/1/type",
    ),
    "missing-next.json": (
        json.dumps(
            {
                "name": "missing-next",
                "steps": [
                    {"id": "a", "type": "transform", "nextSteps": ["b"]},
                    {"id": "b", "type": "transform", "nextSteps": ["nowhere"]},
                ],
            }
        ),
        "UNKNOWN_NEXT_STEP",
        "/steps/1/nextSteps/0",
    ),
}

COUNTER = """\
name: counter
description: two offline steps
tags: [test]
variables: {n: 1}
steps:
  - id: add
    type: transform
    config: {set: {n: "${vars.n + 1}"}}
    nextSteps: [double]
  - id: double
    type: transform
    config: {output: "${vars.n * 2}"}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# -- invalid definitions: exit 1, code and pointer shown, nothing written -------------------


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("name", sorted(BAD_DEFINITIONS))
def test_invalid_definition(
    wfe: Wfe, tmp_path: Path, db_file: Path, command: str, name: str
) -> None:
    text, code, pointer = BAD_DEFINITIONS[name]
    path = write(tmp_path, name, text)
    args = ["validate", path] if command == "validate" else ["run", path, "--db", db_file]
    result = wfe(*args)
    assert result.code == 1, result.output
    assert f"{code}  {pointer}  " in result.output
    assert not db_file.parent.exists()
    assert not (tmp_path / ".wfe").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_invalid_definition_as_json(wfe: Wfe, tmp_path: Path, db_file: Path, command: str) -> None:
    text, code, pointer = BAD_DEFINITIONS["unknown-type.yaml"]
    path = write(tmp_path, "bad.yaml", text)
    extra = ["--db", db_file] if command == "run" else []
    result = wfe(command, path, "--json", *extra)
    assert result.code == 1
    assert result.json() == [
        {
            "file": str(path),
            "document": 1,
            "workflow": "unknown-type",
            "code": code,
            "path": pointer,
            "message": "unknown step type 'teleport'",
        }
    ]
    assert not db_file.parent.exists()


def test_validate_reports_every_file(wfe: Wfe, tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", COUNTER)
    bad = write(tmp_path, "bad.yaml", BAD_DEFINITIONS["unknown-type.yaml"][0])
    result = wfe("validate", good, bad)
    assert result.code == 1
    assert f"{good}: ok (counter)" in result.stdout
    assert f"{bad}: 1 error(s)" in result.stdout
    assert wfe("validate", good).code == 0


def test_validate_names_the_document_of_a_multi_document_file(wfe: Wfe, tmp_path: Path) -> None:
    text = COUNTER + "---\n" + BAD_DEFINITIONS["unknown-type.yaml"][0] + "---\n" + COUNTER
    result = wfe("validate", write(tmp_path, "multi.yaml", text))
    assert result.code == 1
    assert "(document 2, unknown-type): 1 error(s)" in result.stdout
    assert "DUPLICATE_WORKFLOW_NAME  /name  " in result.stdout


# -- usage errors: exit 2 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "required: COMMAND"),
        (["run", "missing.yaml"], "cannot read missing.yaml"),
        (["validate", "missing.yaml"], "cannot read missing.yaml"),
        (["run", "{counter}", "--input", "[1, 2]"], "--input must be a JSON object"),
        (["run", "{counter}", "--input", "{oops"], "--input is not valid JSON"),
        (["run", "{counter}", "--input", "@nowhere.json"], "cannot read --input file"),
        (["run", "{counter}", "--timeout", "0"], "must be greater than 0"),
        (["executions", "list", "--status", "sleepy"], "invalid choice"),
    ],
)
def test_usage_errors(wfe: Wfe, tmp_path: Path, args: list[str], message: str) -> None:
    counter = write(tmp_path, "counter.yaml", COUNTER)
    result = wfe(*[arg.replace("{counter}", str(counter)) for arg in args])
    assert result.code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / ".wfe").exists()


def test_help_documents_exit_codes(wfe: Wfe) -> None:
    for args in (["--help"], ["run", "--help"]):
        result = wfe(*args)
        assert result.code == 0
        assert "exit codes:" in result.stdout and "130" in result.stdout


# -- runs and inspection ------------------------------------------------------------------------


def test_run_then_list_and_show(wfe: Wfe, tmp_path: Path, db_file: Path) -> None:
    path = write(tmp_path, "counter.yaml", COUNTER)
    run = wfe("run", path, "--no-demo", "--db", db_file, "--input", '{"n": 20}')
    assert run.code == 0, run.output
    assert run.stdout.startswith("✔ succeeded  counter v1")
    assert "result: 42" in run.stdout
    assert "✓ add" in run.stderr and "✓ double" in run.stderr
    execution_id = run.stdout.split("execution ")[1].split()[0]

    listed = wfe("executions", "list", "--db", db_file, "--json")
    assert [(e["id"], e["status"]) for e in listed.json()] == [(execution_id, "succeeded")]
    table = wfe("executions", "list", "--db", db_file, "--workflow", listed.json()[0]["workflowId"])
    assert execution_id in table.stdout and "counter" in table.stdout
    assert (
        wfe("executions", "list", "--db", db_file, "--status", "failed").stdout.strip()
        == "no executions"
    )

    shown = wfe("executions", "show", execution_id, "--db", db_file)
    assert shown.code == 0
    assert "status        succeeded" in shown.stdout
    assert "STEP" in shown.stdout and "add " in shown.stdout and "double" in shown.stdout
    document = wfe("executions", "show", execution_id, "--db", db_file, "--json").json()
    assert document["result"] == 42
    assert [s["stepId"] for s in document["steps"]] == ["add", "double"]


def test_show_unknown_execution(wfe: Wfe, tmp_path: Path, db_file: Path) -> None:
    for _ in range(2):  # without a database, then with one
        result = wfe("executions", "show", "no-such-id", "--db", db_file)
        assert result.code == 1
        assert "NOT_FOUND" in result.stderr
        wfe("run", write(tmp_path, "c.yaml", COUNTER), "--no-demo", "--db", db_file)


def test_rerun_registers_a_new_version_only_when_changed(
    wfe: Wfe, tmp_path: Path, db_file: Path
) -> None:
    path = write(tmp_path, "counter.yaml", COUNTER)
    assert "created workflow counter v1" in wfe("run", path, "--no-demo", "--db", db_file).stderr
    assert "unchanged workflow counter v1" in wfe("run", path, "--no-demo", "--db", db_file).stderr
    path.write_text(COUNTER.replace("{n: 1}", "{n: 2}"))
    assert "updated workflow counter v2" in wfe("run", path, "--no-demo", "--db", db_file).stderr
    workflows = wfe("workflows", "list", "--db", db_file)
    assert workflows.code == 0
    assert "counter" in workflows.stdout and "yes" in workflows.stdout
    assert [
        (w["name"], w["version"], w["tags"])
        for w in wfe("workflows", "list", "--db", db_file, "--json").json()
    ] == [("counter", 2, ["test"])]


def test_failed_execution_exits_1(wfe: Wfe, tmp_path: Path, db_file: Path) -> None:
    text = """\
name: doomed
variables: {demoUrl: ""}
steps:
  - id: lookup
    type: http
    config: {url: "${vars.demoUrl + '/customers/missing'}"}
"""
    result = wfe("run", write(tmp_path, "doomed.yaml", text), "--db", db_file, "--json")
    assert result.code == 1
    document = result.json()
    assert (document["status"], document["errorInfo"]["code"]) == ("failed", "HTTP_404")
    assert "✗ lookup failed HTTP_404" in result.stderr
    text_mode = wfe("run", tmp_path / "doomed.yaml", "--db", db_file)
    assert text_mode.code == 1 and text_mode.stdout.startswith("✘ failed  doomed v1")


def test_timeout_leaves_the_execution_waiting(wfe: Wfe, tmp_path: Path, db_file: Path) -> None:
    text = """\
name: patient
steps:
  - id: hold
    type: wait_for_event
    config: {event: go, timeoutSeconds: 600}
"""
    result = wfe(
        "run", write(tmp_path, "p.yaml", text), "--db", db_file, "--timeout", "0.5", "--json"
    )
    assert result.code == 1
    assert result.json()["status"] == "waiting"
    assert "--timeout 0.5s elapsed" in result.stderr
    assert "… hold waiting for event 'go'" in result.stderr


def test_input_file_and_demo_url(wfe: Wfe, tmp_path: Path, db_file: Path) -> None:
    write(
        tmp_path,
        "order.json",
        json.dumps(
            {
                "order": {
                    "orderId": "ORD-7",
                    "customerId": "c",
                    "email": "x@example.com",
                    "address": "Here",
                    "amount": 10.0,
                    "currency": "USD",
                    "items": [{"sku": "S", "qty": 1}],
                }
            }
        ),
    )
    result = wfe(
        "run",
        EXAMPLES / "order_fulfilment.yaml",
        "--db",
        db_file,
        "--json",
        "--input",
        "@order.json",
    )
    assert result.code == 0, result.output
    document = result.json()
    assert document["result"]["orderId"] == "ORD-7"
    assert document["input"]["demoUrl"].startswith("http://127.0.0.1:")


def test_no_demo_leaves_demo_url_unset(wfe: Wfe, db_file: Path) -> None:
    result = wfe(
        "run", EXAMPLES / "daily_sales_report.yaml", "--db", db_file, "--no-demo", "--json"
    )
    assert result.code == 1
    assert "expects `demoUrl`" in result.stderr
    assert result.json()["errorInfo"]["code"] == "EGRESS_DENIED"


# -- crash and restart ----------------------------------------------------------------------------

NAP = """\
name: nap
steps:
  - id: before
    type: transform
    config: {set: {n: 1}}
    nextSteps: [nap]
  - id: nap
    type: wait
    config: {seconds: 1.0}
    nextSteps: [after]
  - id: after
    type: transform
    config: {output: "${vars.n + 1}"}
"""


def test_resume_all_finishes_what_a_killed_process_left(
    wfe: Wfe, tmp_path: Path, db_file: Path
) -> None:
    path = write(tmp_path, "nap.yaml", NAP)
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run", str(path), "--no-demo", "--db", str(db_file)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        while "nap waiting" not in process.stderr.readline():
            assert time.monotonic() < deadline and process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    [waiting] = wfe("executions", "list", "--db", db_file, "--json").json()
    assert waiting["status"] == "waiting"

    resumed = wfe("resume-all", "--db", db_file, "--timeout", "30")
    assert resumed.code == 0, resumed.output
    assert "resuming 1 unfinished execution(s)" in resumed.stderr
    assert "✓ after" in resumed.stderr
    assert waiting["id"] in resumed.stdout and "succeeded" in resumed.stdout
    document = wfe("executions", "show", waiting["id"], "--db", db_file, "--json").json()
    assert (document["status"], document["result"]) == ("succeeded", 2)
    assert wfe("resume-all", "--db", db_file).stderr.startswith("resuming 0 unfinished")


def test_resume_all_without_a_database(wfe: Wfe, db_file: Path) -> None:
    result = wfe("resume-all", "--db", db_file)
    assert result.code == 0
    assert "nothing to resume" in result.stderr
    assert not db_file.parent.exists()
