"""Internal endpoints check who calls them: forged Cloud Tasks, sweep, Pub/Sub push and
Scheduler calls are refused 401 ``UNAUTHENTICATED`` and run nothing.

Tokens are real: RSA keys generated here, signed and verified by google-auth, checked
by the same ``TokenVerifier`` the functions use (the dev key source in local mode; a
certificate endpoint served here stands in for Google's in the ``GoogleCerts`` test).
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_fixtures import client_for, invoker_headers

from shared.api.auth import Unauthenticated
from shared.api.edge import Edge
from shared.api.identity import (
    DEV_AUDIENCE,
    DEV_INVOKER,
    DevKeys,
    GoogleCerts,
    TokenVerifier,
    identity_from_settings,
)
from shared.app.service import StartRequest
from shared.composition import LocalRuntime
from shared.composition.edge import FUNCTION_APPS
from shared.dev.server import DevOptions, running
from shared.errors import InputInvalid
from shared.models import StepRunStatus
from shared.ports import StepTask
from shared.settings import Settings
from shared.task_codec import encode_task

FLOW = {"name": "one", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}
EVERY_MINUTE = {"type": "schedule", "cron": "* * * * *"}
FOREIGN = DevKeys.generate()
"""A key nobody configured: what an attacker signs with."""


def refused(response: httpx.Response, code: str = "UNAUTHENTICATED") -> None:
    assert response.status_code == 401, response.text
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


@pytest.fixture
async def scheduled(runtime: LocalRuntime) -> tuple[str, StepTask]:
    """An execution whose first step run waits for a delivery nobody else makes."""
    await runtime.queue.stop()
    definition = await runtime.app.create_workflow(FLOW)
    execution = await runtime.app.start_execution(StartRequest(definition.id, {}))
    [run] = await runtime.store.list_runs(execution.id)
    assert run.due_at is not None
    return execution.id, StepTask(execution.id, run.id, run.due_at, run.wake_seq)


@pytest.fixture
async def tasks(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(FUNCTION_APPS["execute-step"](edge), "http://fn.test") as client:
        yield client


def forgeries(edge: Edge) -> dict[str, dict[str, str]]:
    """Authorization headers of calls that must be refused."""
    assert edge.identity.minter is not None
    keys = edge.identity.minter
    now = int(time.time())
    tokens = {
        "wrong audience": keys.mint("https://elsewhere.example", DEV_INVOKER),
        "wrong email": keys.mint(DEV_AUDIENCE, "intruder@evil.example"),
        "unverified email": keys.mint(DEV_AUDIENCE, DEV_INVOKER, email_verified=False),
        "expired": keys.mint(DEV_AUDIENCE, DEV_INVOKER, issued_at=now - 7200),
        "wrong issuer": keys.mint(DEV_AUDIENCE, DEV_INVOKER, iss="https://evil.example"),
        "another key": FOREIGN.mint(DEV_AUDIENCE, DEV_INVOKER),
        "tampered": keys.mint(DEV_AUDIENCE, DEV_INVOKER)[:-6] + "AAAAAA",
        "not a token": "hello",
    }
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    return {"no token": {}, "basic auth": {"Authorization": "Basic YTpi"}, **headers}


async def test_forged_task_calls_are_refused_and_run_nothing(
    runtime: LocalRuntime,
    edge: Edge,
    tasks: httpx.AsyncClient,
    scheduled: tuple[str, StepTask],
) -> None:
    execution_id, task = scheduled
    for name, headers in forgeries(edge).items():
        response = await tasks.post("/", content=encode_task(task), headers=headers)
        refused(response)
        [run] = await runtime.store.list_runs(execution_id)
        assert run.status == StepRunStatus.SCHEDULED, name
    answer = await tasks.post("/", content=encode_task(task), headers=invoker_headers(edge))
    assert answer.status_code == 200, answer.text
    assert (await runtime.app.get_execution(execution_id)).status == "succeeded"


async def test_forged_sweeps_are_refused(edge: Edge, tasks: httpx.AsyncClient) -> None:
    for headers in forgeries(edge).values():
        refused(await tasks.post("/sweep", headers=headers))
    answer = await tasks.post("/sweep", headers=invoker_headers(edge, "sweep"))
    assert (answer.status_code, answer.json()["status"]) == (200, "swept")


async def test_forged_pubsub_and_scheduler_calls_start_nothing(
    runtime: LocalRuntime, edge: Edge
) -> None:
    app = runtime.app
    listens = await app.create_workflow(
        {**FLOW, "name": "listens", "trigger": {"type": "event", "topic": "t"}}
    )
    ticks = await app.create_workflow(
        {**FLOW, "name": "ticks", "trigger": {"type": "schedule", "cron": "* * * * *"}}
    )
    push = {"message": {"data": "e30=", "messageId": "m-1", "attributes": {}}}
    async with client_for(FUNCTION_APPS["trigger-handler"](edge), "http://fn.test") as client:
        for headers in forgeries(edge).values():
            refused(await client.post("/pubsub?topic=t", json=push, headers=headers))
            refused(await client.post(f"/schedule/{ticks.id}", headers=headers))
        for workflow_id in (listens.id, ticks.id):
            assert (await app.list_executions(workflow_id=workflow_id)).items == []
        ok = await client.post(
            "/pubsub?topic=t", json=push, headers=invoker_headers(edge, "pubsub")
        )
        assert ok.status_code == 200, ok.text
    assert len((await app.list_executions(workflow_id=listens.id)).items) == 1


async def test_the_dev_server_refuses_unauthenticated_internal_calls(tmp_path: Path) -> None:
    settings = Settings.local_mode(db_path=str(tmp_path / "dev.db"))
    options = DevOptions(examples=None, demo_port=None)
    async with running(settings, options) as server:
        assert server.edge is not None
        workflow = await server.edge.app.create_workflow(
            {**FLOW, "trigger": {"type": "schedule", "cron": "* * * * *"}}
        )
        async with client_for(server, "http://127.0.0.1:8080") as client:
            for path in (
                "/tasks/execute-step",
                "/tasks/sweep",
                "/triggers/pubsub?topic=t",
                f"/triggers/schedule/{workflow.id}",
            ):
                refused(await client.post(path, json={}))
            assert (await server.edge.app.list_executions(workflow_id=workflow.id)).items == []
            tick = await client.post(
                f"/triggers/schedule/{workflow.id}",
                headers=invoker_headers(server.edge, "scheduler"),
            )
            assert tick.status_code == 200, tick.text


def test_no_verifier_needs_the_explicit_unauthenticated_flag(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(InputInvalid, match="WFE_ALLOW_UNAUTHENTICATED"):
        identity_from_settings(Settings.local_mode(token_verifier="none"))
    with caplog.at_level(logging.WARNING):
        identity = identity_from_settings(
            Settings.local_mode(token_verifier="none", allow_unauthenticated=True)
        )
    assert identity.verifier is None and "WFE_TOKEN_VERIFIER=none" in caplog.text


async def test_google_mode_checks_the_configured_invoker_accounts(
    certs_server: tuple[str, list[str]],
) -> None:
    """``backend=gcp``: the invoker accounts and audiences of the settings, keys fetched
    from the certificate endpoint (cached, refetched for an unknown key id)."""
    url, fetches = certs_server
    settings = Settings.from_env(
        {},
        backend="gcp",
        tasks_service_account="tasks@p.iam.gserviceaccount.com",
        execute_step_url="https://execute-step.example",
    )
    identity = identity_from_settings(settings)
    assert identity.minter is None and isinstance(identity.verifier, TokenVerifier)
    assert isinstance(identity.verifier.keys, GoogleCerts)
    assert fetches == []  # nothing is fetched at startup
    identity.verifier = TokenVerifier(GoogleCerts(url, min_refresh_seconds=0))
    good = SIGNER.mint("https://execute-step.example", "tasks@p.iam.gserviceaccount.com")
    request = _request(good)
    assert await identity.check(request, "tasks") == "tasks@p.iam.gserviceaccount.com"
    assert await identity.check(_request(good), "tasks")
    assert len(fetches) == 1  # cached
    for token in (
        SIGNER.mint("https://execute-step.example", "someone@p.iam.gserviceaccount.com"),
        SIGNER.mint("https://trigger-handler.example", "tasks@p.iam.gserviceaccount.com"),
        FOREIGN.mint("https://execute-step.example", "tasks@p.iam.gserviceaccount.com"),
    ):
        with pytest.raises(Unauthenticated):
            await identity.check(_request(token), "tasks")
    assert len(fetches) == 2  # the foreign key id made it look for a rotated key once
    with pytest.raises(Unauthenticated, match="no invoker"):  # no scheduler account
        await identity.check(_request(good), "scheduler")


SIGNER = DevKeys.generate()
"""Stands in for Google's signing key behind the certificate endpoint."""


def _request(token: str) -> Any:
    from starlette.requests import Request

    headers = [(b"authorization", f"Bearer {token}".encode())]
    return Request({"type": "http", "headers": headers, "method": "POST", "path": "/"})


@pytest.fixture
def certs_server() -> Iterator[tuple[str, list[str]]]:
    """Serves ``{key id: certificate}`` as Google's endpoint does; records each fetch."""
    fetches: list[str] = []
    body = json.dumps({SIGNER.key_id: SIGNER.certificate_pem}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs", fetches
    finally:
        server.shutdown()
        server.server_close()


async def test_wfe_dev_token_prints_a_token_the_dev_verifier_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.cli.main import main

    key_file = tmp_path / "dev.pem"
    key_file.write_text(SIGNER.private_pem)
    monkeypatch.setenv("WFE_DEV_KEY_FILE", str(key_file))
    assert main(["dev-token", "--kind", "pubsub"]) == 0
    token = capsys.readouterr().out.strip()
    identity = identity_from_settings(Settings.local_mode(dev_key_file=str(key_file)))
    assert await identity.check(_request(token), "pubsub") == DEV_INVOKER
    other = identity_from_settings(Settings.local_mode())  # the process's own key
    with pytest.raises(Unauthenticated):
        await other.check(_request(token), "pubsub")
