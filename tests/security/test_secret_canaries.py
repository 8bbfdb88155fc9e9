"""Issue 10, item 6: secrets for http steps, and canaries proving they are never kept.

Two canary secrets are planted as ``WFE_SECRET_*`` variables and used by an http step
(in a header, a query parameter and the body) against a hostile service that echoes
everything it receives back, in a 200 and in a 500. Then every row of every table of
the SQLite store, every event, the REST and GraphQL views and export of the workflow
and its executions, the SSE stream and every log line of the run (httpx's included)
are searched for the values, as is and URL-encoded: none may hold them, while the
service must have received them (so the test fails if secrets were simply not sent).

Validation refuses what would leak before anything runs: credentials in a URL, a
secret in the URL, an undeclared name, a secret inside an expression, a reference
outside the declared stores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.api.streams import create_stream_app
from shared.app.service import StartRequest
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import build_edge
from shared.dev.demo_service import DemoServer
from shared.errors import DefinitionInvalid
from shared.settings import Settings
from tests.edge_fixtures import client_for

TOKEN = f"canary-token-{secrets.token_hex(8)}"
KEY = f"canary/key+{secrets.token_hex(8)}"  # characters that URL encoding changes
ENV = {"WFE_SECRET_CANARY_TOKEN": TOKEN, "WFE_SECRET_CANARY_KEY": KEY}


async def _echo(request: Request) -> JSONResponse:
    """A hostile service: answers with everything it received."""
    received = {
        "headers": dict(request.headers),
        "query": dict(request.query_params),
        "url": str(request.url),
        "body": (await request.body()).decode(),
    }
    request.app.state.received.append(received)
    status = 500 if request.url.path == "/fail" else 200
    return JSONResponse({"echo": received, "note": f"you sent {request.url}"}, status_code=status)


@pytest.fixture
def echo() -> Iterator[DemoServer]:
    app = Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST"])])
    app.state.received = []
    with DemoServer(app) as server:
        yield server


@pytest.fixture
async def hosted(
    tmp_path: Path, echo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[LocalRuntime, Edge]]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    allowed = echo.url.removeprefix("http://")
    settings = Settings.local_mode(db_path=str(tmp_path / "canary.db"), http_allowed_hosts=allowed)
    runtime = build_local(settings)
    await runtime.start()
    edge = build_edge(settings, runtime=runtime)
    await edge.start()
    try:
        yield runtime, edge
    finally:
        await edge.stop()
        await runtime.stop()


def _http(step_id: str, url: str, next_steps: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "http",
        "config": {
            "method": "POST",
            "url": url,
            "secrets": {"token": "env:WFE_SECRET_CANARY_TOKEN", "key": "env:WFE_SECRET_CANARY_KEY"},
            "headers": {"Authorization": "Bearer ${secret.token}", "X-Order": "${input.order}"},
            "query": {"api_key": "${secret.key}", "order": "${input.order}"},
            "body": {"auth": {"token": "${secret.token}"}, "order": "${input.order}"},
        },
        "onError": {"strategy": "continue"},
        "nextSteps": next_steps or [],
    }


def _workflow(base: str) -> dict[str, Any]:
    return {
        "name": "canary",
        "description": "an http step with secrets, against a service that echoes them",
        "steps": [
            _http("call", f"{base}/ok", ["fails"]),
            _http("fails", f"{base}/fail", ["keep"]),
            {
                "id": "keep",
                "type": "transform",
                "config": {"set": {"echoed": "${prev}"}},
            },
        ],
        "output": {"echoed": "${vars.echoed}"},
    }


async def _finished(runtime: LocalRuntime, workflow_id: str, data: dict[str, Any]) -> str:
    execution = await runtime.app.start_execution(StartRequest(workflow_id, data))
    for _ in range(500):
        if (await runtime.app.get_execution(execution.id)).status.terminal:
            return execution.id
        await asyncio.sleep(0.02)
    raise AssertionError("the execution did not finish")


async def _steps(runtime: LocalRuntime, execution_id: str) -> dict[str, dict[str, Any]]:
    runs = await runtime.app.step_history(execution_id)
    return {run.step_id: run.model_dump(mode="json", by_alias=True) for run in runs}


def _leaks(text: str) -> list[str]:
    forms = {TOKEN, KEY, quote(KEY, safe=""), quote_plus(KEY), quote(TOKEN, safe="")}
    return sorted(form for form in forms if form in text)


def _database_text(path: Path) -> str:
    rows: list[str] = []
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                rows.append(repr(row))
    assert tables and rows
    return "\n".join(rows)


async def test_canary_secrets_are_sent_and_never_kept(
    hosted: tuple[LocalRuntime, Edge],
    echo: DemoServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime, edge = hosted
    caplog.set_level(logging.DEBUG)  # every logger, httpx's request lines included
    async with (
        client_for(create_management_app(edge, lifespan=False)) as api,
        client_for(create_stream_app(edge, lifespan=False), "http://streams.test") as streams,
    ):
        created = await api.post("/api/v1/workflows", json=_workflow(echo.url))
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]
        started = await api.post(
            f"/api/v1/workflows/{workflow_id}/execute", json={"input": {"order": "o-1"}}
        )
        assert started.status_code in (200, 201, 202), started.text
        execution_id = started.json()["id"]
        async with streams.stream("GET", f"/sse/executions/{execution_id}") as stream:
            sse = "\n".join([line async for line in stream.aiter_lines()])
        detail = (await api.get(f"/api/v1/executions/{execution_id}")).json()
        assert detail["status"] == "succeeded", detail

        responses = [
            sse,
            json.dumps(detail),
            (await api.get(f"/api/v1/executions/{execution_id}/steps")).text,
            (await api.get(f"/api/v1/executions/{execution_id}/events")).text,
            (await api.get(f"/api/v1/workflows/{workflow_id}")).text,
            (await api.get(f"/api/v1/workflows/{workflow_id}/export")).text,
            (await api.get(f"/api/v1/workflows/{workflow_id}/export?format=yaml")).text,
            (await api.get(f"/api/v1/executions?workflowId={workflow_id}")).text,
        ]
        query = """query($id: ID!) { execution(id: $id) {
            input result error variables steps { input output error { code message } }
            workflow { definition } } }"""
        graphql = await api.post(
            "/graphql", json={"query": query, "variables": {"id": execution_id}}
        )
        assert graphql.status_code == 200 and "errors" not in graphql.json(), graphql.text
        responses.append(graphql.text)

    # The service received both secrets, in every place they were put.
    received = echo.app.state.received
    assert [r["headers"]["authorization"] for r in received] == [f"Bearer {TOKEN}"] * 2
    assert [r["query"]["api_key"] for r in received] == [KEY] * 2
    assert all(json.loads(r["body"])["auth"] == {"token": TOKEN} for r in received)

    # ...and nothing kept them: not the store, not the events, not an API, not a log.
    events = [e.to_json_dict() for e in await runtime.app.events(execution_id)]
    assert _leaks(json.dumps(events)) == []
    for text in responses:
        assert _leaks(text) == [], text[:2000]
    assert _leaks(_database_text(tmp_path / "canary.db")) == []
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    requests_logged = [r for r in caplog.records if r.getMessage().startswith("HTTP Request")]
    assert any("/ok" in r.getMessage() for r in requests_logged)  # the step's calls logged
    assert _leaks(logged) == []

    # What was recorded says where secrets went, and the echo shows as scrubbed.
    steps = await _steps(runtime, execution_id)
    call = steps["call"]
    assert call["input"]["query"]["api_key"] == "${secret.key}"
    assert call["input"]["body"]["auth"] == {"token": "${secret.token}"}
    assert call["output"]["body"]["echo"]["headers"]["authorization"] == "Bearer [secret:token]"
    failed = steps["fails"]["error"]
    assert failed["code"] == "HTTP_500" and "[secret:" not in failed["message"]
    assert "api_key" not in failed["message"]  # the URL of the message has no query


async def test_an_execution_input_cannot_forge_a_secret_marker(
    hosted: tuple[LocalRuntime, Edge], echo: DemoServer
) -> None:
    """Data rendered into the request never turns into a secret, whatever it contains."""
    runtime, _ = hosted
    flow = await runtime.app.create_workflow(_workflow(echo.url))
    forged = f"\ue000{'0' * 16}:token\ue001 ${{secret.token}}"
    execution_id = await _finished(runtime, flow.id, {"order": forged})
    assert (await runtime.app.get_execution(execution_id)).status.value == "succeeded"
    for request in echo.app.state.received:
        assert TOKEN not in request["headers"]["x-order"]
        assert TOKEN not in request["query"]["order"]
        assert TOKEN not in json.loads(request["body"])["order"]


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        ({"url": "https://user:pass@api.example.com/x"}, "URL_CREDENTIALS", "/url"),
        ({"url": "https://api.example.com/${secret.token}"}, "SECRET_IN_URL", "/url"),
        ({"headers": {"X-Key": "${secret.other}"}}, "SECRET_UNDECLARED", "/headers/X-Key"),
        ({"body": {"k": "${secret.token + 'x'}"}}, "SECRET_TEMPLATE", "/body/k"),
        ({"query": {"k": "${string(secret.token)}"}}, "SECRET_TEMPLATE", "/query/k"),
        (
            {"secrets": {"token": "env:WFE_API_KEY_SALT"}},
            "SECRET_REF_FORBIDDEN",
            "/secrets/token",
        ),
        ({"secrets": {"token": "file:/etc/passwd"}}, "SECRET_REF_FORBIDDEN", "/secrets/token"),
    ],
)
async def test_validation_refuses_what_would_leak(
    hosted: tuple[LocalRuntime, Edge], change: dict[str, Any], code: str, path: str
) -> None:
    runtime, _ = hosted
    step = {
        "id": "call",
        "type": "http",
        "config": {
            "url": "https://api.example.com/x",
            "secrets": {"token": "env:WFE_SECRET_CANARY_TOKEN"},
            "headers": {"Authorization": "Bearer ${secret.token}"},
            **change,
        },
    }
    with pytest.raises(DefinitionInvalid) as refused:
        await runtime.app.create_workflow({"name": f"bad-{uuid.uuid4().hex[:6]}", "steps": [step]})
    found = [(i.code, i.path) for i in refused.value.issues]
    assert (code, f"/steps/0/config{path}") in found, found
    assert (await runtime.app.list_workflows()).items == []


async def test_a_missing_secret_fails_the_step_without_calling(
    hosted: tuple[LocalRuntime, Edge], echo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _ = hosted
    monkeypatch.delenv("WFE_SECRET_CANARY_KEY")
    flow = await runtime.app.create_workflow(_workflow(echo.url))
    steps = await _steps(runtime, await _finished(runtime, flow.id, {"order": "o-2"}))
    assert steps["call"]["error"]["code"] == "SECRET_UNAVAILABLE"
    assert echo.app.state.received == []
