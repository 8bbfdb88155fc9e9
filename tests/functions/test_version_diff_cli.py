"""``wfe diff WORKFLOW A B``: on the local SQLite file, and on a deployment (``--url``)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.cli.diff_cmd import render
from shared.cli.main import main
from shared.cli.ops import runtime_for

REPO = Path(__file__).resolve().parents[2]

V1: dict[str, Any] = {
    "name": "cli-diffed",
    "steps": [
        {"id": "a", "type": "transform", "config": {"set": {"x": 1}}, "nextSteps": ["b"]},
        {"id": "b", "type": "transform", "config": {"set": {"y": 2}}},
    ],
}


def v2() -> dict[str, Any]:
    doc = copy.deepcopy(V1)
    doc["description"] = "second"
    doc["variables"] = {"k": 1}
    doc["steps"][0]["config"]["set"]["x"] = 2
    doc["steps"][0]["nextSteps"] = ["c"]
    doc["steps"][1] = {"id": "c", "type": "transform", "config": {"set": {"y": 2}}}
    return doc


async def _store_two_versions(db: str) -> str:
    runtime = runtime_for(db)
    async with runtime:
        created = await runtime.app.create_workflow(V1)
        await runtime.app.update_workflow(created.id, v2())
    return created.id


def test_local_diff_by_name_and_by_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "cli.db")
    workflow_id = asyncio.run(_store_two_versions(db))
    assert main(["diff", "cli-diffed", "1", "2", "--db", db]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text == [
        f"workflow {workflow_id}: v1 -> v2",
        '+ /description: "second"',
        "+ step c (transform)",
        "- step b (transform)",
        "~ step a (transform)",
        "    ~ /config/set/x: 1 -> 2",
        '    ~ /nextSteps/0: "b" -> "c"',
        "+ edge a -> c (next)",
        "- edge a -> b (next)",
        "+ /variables/k: 1",
    ]
    assert main(["diff", workflow_id, "2", "1", "--db", db, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["steps"]["added"] == [{"id": "b", "type": "transform"}]
    assert body["fields"] == [{"path": "/description", "kind": "removed", "before": "second"}]
    assert main(["diff", workflow_id, "2", "2", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no differences"


def test_local_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "cli.db")
    asyncio.run(_store_two_versions(db))
    assert main(["diff", "cli-diffed", "1", "3", "--db", db]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main(["diff", "nobody", "1", "2", "--db", db]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert main(["diff", "x", "1", "2", "--db", str(tmp_path / "absent.db")]) == 1
    with pytest.raises(SystemExit) as usage:
        main(["diff", "cli-diffed", "0", "2", "--db", db])
    assert usage.value.code == 2


def test_render_marks_truncation_and_cuts_long_values() -> None:
    diff = {
        "workflowId": "w",
        "fromVersion": 1,
        "toVersion": 2,
        "identical": False,
        "fields": [{"path": "/output", "kind": "changed", "before": "x" * 500, "after": 1}],
        "trigger": [{"path": "/cron", "kind": "added", "after": "* * * * *"}],
        "edges": {"added": [{"source": "p", "target": "l", "kind": "branch", "label": "left"}]},
        "truncated": True,
    }
    lines = render(diff).splitlines()
    assert lines[1].startswith('~ /output: "xxx') and lines[1].endswith("… -> 1")
    assert len(lines[1]) < 300
    assert "+ edge p -> l (branch 'left')" in lines
    assert '+ /trigger/cron: "* * * * *"' in lines
    assert lines[-1].startswith("(truncated")


async def _serve(edge: Edge) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app = create_management_app(edge, lifespan=False)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, serving, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _wfe(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_remote_diff_through_the_rest_api(edge: Edge) -> None:
    server, serving, base = await _serve(edge)
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            created = await client.post("/api/v1/workflows", json=V1)
            assert created.status_code == 201, created.text
            workflow_id = created.json()["id"]
            updated = await client.put(f"/api/v1/workflows/{workflow_id}", json=v2())
            assert updated.status_code == 200, updated.text
        code, out, err = await _wfe("diff", workflow_id, "1", "2", "--url", base, "--json")
        assert code == 0, err
        body = json.loads(out)
        assert body["workflowId"] == workflow_id
        assert body["steps"]["removed"] == [{"id": "b", "type": "transform"}]
        code, out, err = await _wfe("diff", workflow_id, "1", "2", "--url", base)
        assert code == 0 and "~ step a (transform)" in out, err
        code, out, err = await _wfe("diff", workflow_id, "1", "9", "--url", base)
        assert code == 1 and "NOT_FOUND" in err
    finally:
        server.should_exit = True
        await serving
    code, out, err = await _wfe("diff", "w", "1", "2", "--url", base)
    assert code == 1 and "UNAVAILABLE" in err
