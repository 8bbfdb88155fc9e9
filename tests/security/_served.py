"""A local runtime with its own settings (tight rate limits), its edge with API-key
principals in two tenants, and the management and trigger apps served in-process.

The principals (``KEYS``): in tenant ``tenant-a`` an admin, an editor and a viewer; in
``tenant-b`` an admin. The key values are secrets the audit tests look for.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from edge_fixtures import _settle, client_for
from starlette.requests import HTTPConnection

from shared.api.auth import Principal, Role, Unauthenticated
from shared.api.edge import Edge
from shared.api.rest import create_management_app
from shared.composition import LocalRuntime, build_local
from shared.composition.edge import FUNCTION_APPS, build_edge
from shared.settings import Settings

API = "/api/v1"
KEYS: dict[str, Principal] = {
    "key-a-admin-5e3c1d": Principal("alice", "tenant-a", Role.ADMIN),
    "key-a-editor-7f0a2b": Principal("erin", "tenant-a", Role.EDITOR),
    "key-a-viewer-91bb4e": Principal("victor", "tenant-a", Role.VIEWER),
    "key-b-admin-c4d8e2": Principal("bob", "tenant-b", Role.ADMIN),
}
ALICE, ERIN, VICTOR, BOB = ({"X-API-Key": key} for key in KEYS)
FLOW = {"name": "audited", "steps": [{"id": "a", "type": "transform", "config": {"set": {"n": 1}}}]}


class KeyAuthenticator:
    """``X-API-Key`` looked up in ``KEYS`` (the edge's seam, without hashing)."""

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        key = connection.headers.get("x-api-key", "")
        if key in KEYS:
            return KEYS[key]
        raise Unauthenticated("invalid API key")


@dataclass
class Served:
    runtime: LocalRuntime
    edge: Edge
    api: httpx.AsyncClient
    """The ``create`` function's app."""
    hooks: httpx.AsyncClient
    """The ``trigger-handler`` function's app."""

    async def executions(self, tenant: str) -> int:
        """Executions stored for ``tenant``."""
        page = await self.runtime.app.for_tenant(tenant).list_executions(limit=200)
        return len(page.items)

    async def create(self, headers: Mapping[str, str], flow: Mapping[str, Any] = FLOW) -> str:
        """A new workflow (its name gets a suffix: names are unique in a tenant)."""
        unique = {**flow, "name": f"{flow['name']}-{uuid.uuid4().hex[:8]}"}
        created = await self.api.post(f"{API}/workflows", json=unique, headers=dict(headers))
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


@asynccontextmanager
async def served(tmp_path: Path, **overrides: object) -> AsyncIterator[Served]:
    """Everything started on a fresh SQLite file with the settings ``overrides``."""
    runtime = build_local(Settings.local_mode(db_path=str(tmp_path / "served.db"), **overrides))
    await runtime.start()
    edge = build_edge(runtime.settings, runtime=runtime, authenticator=KeyAuthenticator())
    await edge.start()
    try:
        async with (
            client_for(create_management_app(edge, lifespan=False)) as api,
            client_for(FUNCTION_APPS["trigger-handler"](edge), "http://fn.test") as hooks,
        ):
            yield Served(runtime, edge, api, hooks)
    finally:
        await edge.stop()
        await _settle(runtime)
        await runtime.stop()
