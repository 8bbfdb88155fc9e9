"""Export back to Cloud Workflows / Step Functions, and the ``wfe import`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.cli.main import main
from shared.importers import export_asl, export_gcw, translate

CORPUS = Path(__file__).resolve().parent / "corpus"

OURS = {
    "name": "round-trip",
    "steps": [
        {
            "id": "start",
            "type": "transform",
            "config": {"set": {"n": "${size(input.items)}"}},
            "nextSteps": ["call"],
        },
        {
            "id": "call",
            "type": "http",
            "config": {"method": "POST", "url": "https://a.test/x", "body": {"n": "${vars.n}"}},
            "outputVar": "r",
            "nextSteps": ["pause"],
        },
        {"id": "pause", "type": "wait", "config": {"seconds": 2}, "nextSteps": ["pick"]},
        {
            "id": "pick",
            "type": "branch",
            "config": {
                "cases": [{"when": "vars.n > 2 && vars.n != 7", "next": "big"}],
                "default": "small",
            },
            "nextSteps": ["big", "small"],
        },
        {"id": "big", "type": "transform", "config": {"set": {"size": "big"}}},
        {"id": "small", "type": "transform", "config": {"set": {"size": "small"}}},
    ],
}


def test_export_gcw_translates_expressions_back_and_reimports_valid() -> None:
    exported = export_gcw(OURS)
    assert not exported.unsupported
    main_steps = exported.definition["main"]["steps"]
    assert main_steps[0] == {"start": {"assign": [{"n": "${len(args.items)}"}]}}
    assert main_steps[1]["call"]["call"] == "http.post" and main_steps[1]["call"]["result"] == "r"
    assert main_steps[3]["pick"]["switch"][0]["condition"] == "${n > 2 and n != 7}"
    back = translate("gcw", exported.definition)
    assert back.valid, back.issues
    assert {s["type"] for s in back.definition["steps"]} >= {"http", "wait", "branch", "transform"}


def test_export_reports_what_does_not_map_back() -> None:
    ours = {
        "name": "x",
        "steps": [
            {
                "id": "a",
                "type": "transform",
                "config": {"set": {"v": "${prev.x}"}},
                "nextSteps": ["b"],
            },
            {"id": "b", "type": "publish", "config": {"topic": "t"}},
        ],
    }
    exported = export_gcw(ours)
    assert [(u.code, u.path) for u in exported.unsupported] == [
        ("EXPORT_EXPRESSION", "/steps/0/config/set/v"),
        ("EXPORT_STEP_TYPE", "/steps/1"),
    ]


def test_export_asl_and_reimport() -> None:
    ours = {
        "name": "asl-trip",
        "steps": [
            {
                "id": "get",
                "type": "http",
                "config": {"url": "https://a.test/y"},
                "nextSteps": ["check"],
                "onError": {"strategy": "retry", "retry": {"maxAttempts": 3}},
            },
            {
                "id": "check",
                "type": "branch",
                "config": {
                    "cases": [{"when": "prev.status == 200", "next": "ok"}],
                    "default": "wait",
                },
                "nextSteps": ["ok", "wait"],
            },
            {"id": "wait", "type": "wait", "config": {"seconds": 5}},
            {"id": "ok", "type": "transform", "config": {"output": {"fine": True}}},
        ],
    }
    exported = export_asl(ours)
    states = exported.definition["States"]
    assert states["get"]["Resource"] == "arn:aws:states:::http:invoke"
    assert states["get"]["Retry"][0]["MaxAttempts"] == 2
    assert states["check"]["Choices"] == [
        {"Variable": "$.status", "NumericEquals": 200, "Next": "ok"}
    ]
    assert states["wait"] == {"Type": "Wait", "Seconds": 5, "End": True}
    assert states["ok"] == {"Type": "Pass", "Result": {"fine": True}, "End": True}
    assert not exported.unsupported
    back = translate("asl", exported.definition)
    assert back.valid, back.issues


def test_cli_dry_run_prints_the_translation_and_findings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["import", "--from", "gcw", str(CORPUS / "gcw" / "error_catch.workflows.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert '"type": "http"' in out and "GCW_HTTP_AUTH" in out and "valid: 3 warning(s)" in out


def test_cli_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "asl" / "path-based-on-data.statemachine.asl.json"
    assert main(["import", "--from", "asl", str(path), "--json", "--name", "choice"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] and document["definition"]["name"] == "choice"
    assert document["warnings"] == [] and document["unsupported"] == []


def test_cli_save_stores_a_valid_translation_and_refuses_unsupported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    sample = str(CORPUS / "gcw" / "subworkflow.workflows.yaml")
    assert main(["import", "--from", "gcw", sample, "--name", "hello", "--save", "--db", db]) == 0
    connector = str(CORPUS / "gcw" / "connector_publish_pubsub.workflows.yaml")
    assert main(["import", "--from", "gcw", connector, "--save", "--db", db]) == 1
    assert "not saved" in capsys.readouterr().err
    assert main(["workflows", "list", "--json", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in listed] == ["hello"]


def test_cli_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: &x 1\nb: *x\n")
    assert main(["import", "--from", "gcw", str(bad)]) == 1
    assert "IMPORT_YAML_REFUSED" in capsys.readouterr().err
    assert main(["import", "--from", "gcw", str(tmp_path / "absent.yaml")]) == 2
