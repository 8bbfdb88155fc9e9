"""The very first request to a fresh process, without credentials, is refused.

A regression test for the cold-start bypass: the edges once started with a local-dev
authenticator in a module global and swapped it for the API-key one only when the
runtime was first built, inside the first request, after that request had been
authenticated. Each process here is fresh, with ``WFE_API_KEYS`` set, and is waited
for by a bare TCP connect (no HTTP request warms anything) before the first request
without a key is sent, on every door: REST, GraphQL over HTTP, GraphQL over
WebSocket, the plain WebSocket and SSE; for the functions under functions-framework,
the stream app under uvicorn, and ``wfe dev``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from processes import ServiceProcess, wfe_dev_argv
from websockets.exceptions import ConnectionClosed

from shared.api.auth import hash_api_key

BIN = Path(sys.executable).parent
KEY, SALT = "s3cret-key", "pepper"
KEY_ENTRY = f"{hash_api_key(KEY, SALT)}:alice:default:owner"
FLOW = {"name": "cold", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}


class Process(ServiceProcess):
    """A fresh process with API keys configured, waited for by a bare TCP connect."""

    def __init__(self, argv: list[str], tmp: Path) -> None:
        env = {"WFE_API_KEYS": KEY_ENTRY, "WFE_API_KEY_SALT": SALT}
        super().__init__(argv, tmp, {**env, "WFE_DB_PATH": str(tmp / "cold.db")})
        self.wait_listening()


def _function(name: str, target: str) -> list[str]:
    return [
        str(BIN / "functions-framework"),
        "--source",
        f"functions/{name}/main.py",
        "--target",
        target,
        "--asgi",
        "--port",
        "{port}",
    ]


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        output = process.stop()
        assert "Traceback" not in output, output[-4000:]


def _unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


async def _ws_close_code(url: str, subprotocols: list[str] | None = None) -> int:
    async with websockets.connect(url, subprotocols=subprotocols) as ws:  # type: ignore[arg-type]
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
    raise AssertionError("unreachable")


@pytest.mark.slow
@pytest.mark.parametrize(
    "first",
    [
        ("GET", "/api/v1/workflows"),
        ("POST", "/api/v1/workflows"),
        ("POST", "/graphql"),
        ("GET", "/graphql?query=%7Bworkflows%7Bid%7D%7D"),
    ],
)
def test_create_under_functions_framework_refuses_the_first_request(
    fresh: list[Process], tmp_path: Path, first: tuple[str, str]
) -> None:
    process = Process(_function("create", "create"), tmp_path)
    fresh.append(process)
    method, path = first
    body = {"query": 'mutation { deleteWorkflow(id: "x") { __typename } }'}
    payload = FLOW if path.startswith("/api") else body
    response = httpx.request(
        method, process.base + path, json=payload if method == "POST" else None
    )
    _unauthenticated(response)
    assert httpx.get(f"{process.base}/api/v1/workflows").status_code == 401
    keyed = httpx.post(f"{process.base}/api/v1/workflows", json=FLOW, headers={"X-API-Key": KEY})
    assert keyed.status_code == 201, keyed.text
    assert keyed.json()["owner"] == "alice"


@pytest.mark.slow
def test_status_stream_under_functions_framework_refuses_the_first_sse(
    fresh: list[Process], tmp_path: Path
) -> None:
    process = Process(_function("status-stream", "status_stream"), tmp_path)
    fresh.append(process)
    _unauthenticated(httpx.get(f"{process.base}/sse/executions/anything"))
    keyed = httpx.get(f"{process.base}/sse/executions/anything", headers={"X-API-Key": KEY})
    assert keyed.status_code == 404  # authenticated now: the execution does not exist


@pytest.mark.slow
@pytest.mark.parametrize("door", ["sse", "ws", "graphql-ws"])
async def test_status_stream_under_uvicorn_refuses_the_first_connection(
    fresh: list[Process], tmp_path: Path, door: str
) -> None:
    argv = [
        str(BIN / "uvicorn"),
        "--app-dir",
        "functions/status-stream",
        "main:app",
        "--port",
        "{port}",
    ]
    process = Process(argv, tmp_path)
    fresh.append(process)
    if door == "sse":
        async with httpx.AsyncClient() as client:
            _unauthenticated(await client.get(f"{process.base}/sse/workflows/anything"))
    elif door == "ws":
        assert await _ws_close_code(f"{process.ws}/ws/executions/anything") == 4401
    else:
        code = await _ws_close_code(f"{process.ws}/graphql", ["graphql-transport-ws"])
        assert code == 4401


@pytest.mark.slow
async def test_wfe_dev_with_keys_refuses_every_door_until_a_key_is_given(
    fresh: list[Process], tmp_path: Path
) -> None:
    process = Process(wfe_dev_argv(tmp_path / "dev.db"), tmp_path)
    fresh.append(process)
    async with httpx.AsyncClient(base_url=process.base) as client:
        _unauthenticated(await client.post("/api/v1/workflows", json=FLOW))
        _unauthenticated(await client.post("/graphql", json={"query": "{ workflows { id } }"}))
        _unauthenticated(await client.get("/sse/executions/anything"))
        assert await _ws_close_code(f"{process.ws}/ws/executions/anything") == 4401
        code = await _ws_close_code(f"{process.ws}/graphql", ["graphql-transport-ws"])
        assert code == 4401
        listed = await client.get("/api/v1/workflows", headers={"Authorization": f"Bearer {KEY}"})
        assert listed.status_code == 200, listed.text


@pytest.mark.slow
def test_create_under_uvicorn_refuses_the_first_request(
    fresh: list[Process], tmp_path: Path
) -> None:
    argv = [str(BIN / "uvicorn"), "--app-dir", "functions/create", "main:app", "--port", "{port}"]
    process = Process(argv, tmp_path)
    fresh.append(process)
    _unauthenticated(httpx.post(f"{process.base}/api/v1/workflows", json=FLOW))
    keyed = httpx.get(f"{process.base}/api/v1/workflows", headers={"X-API-Key": KEY})
    assert keyed.status_code == 200, keyed.text
