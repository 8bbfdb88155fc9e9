"""``wfe tenants ...`` on the local SQLite file, read by a server on the same file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from edge_fixtures import client_for

from shared.api.rest import create_management_app
from shared.cli.main import main
from shared.composition import build_local
from shared.composition.edge import build_edge
from shared.settings import Settings


async def _wfe(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """``wfe argv...`` (in a thread: the command runs its own event loop)."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else None, captured.err


async def test_tenants_commands_manage_the_registry_a_server_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "wfe.db")
    code, tenant, _ = await _wfe(
        capsys,
        "tenants",
        "create",
        "acme",
        "--name",
        "Acme",
        "--quota",
        "maxWorkflows=3",
        "--db",
        db,
    )
    assert code == 0 and tenant["quotas"] == {"maxWorkflows": 3}
    code, _, err = await _wfe(capsys, "tenants", "create", "acme", "--db", db)
    assert code == 1 and err.startswith("TENANT_EXISTS")
    code, _, err = await _wfe(capsys, "tenants", "create", "../x", "--db", db)
    assert code == 1 and "VALIDATION_FAILED" in err
    code, changed, _ = await _wfe(
        capsys, "tenants", "quotas", "acme", "--quota", "stepsPerSecond=2.5", "--db", db
    )
    assert changed["quotas"] == {"stepsPerSecond": 2.5}
    code, issued, _ = await _wfe(
        capsys, "tenants", "keys", "issue", "acme", "--subject", "ci", "--role", "admin", "--db", db
    )
    secret = issued["secret"]
    code, keys, _ = await _wfe(capsys, "tenants", "keys", "list", "acme", "--db", db)
    assert [k["id"] for k in keys] == [issued["key"]["id"]] and secret not in json.dumps(keys)
    code, listed, _ = await _wfe(capsys, "tenants", "list", "--db", db)
    assert [t["id"] for t in listed] == ["acme"]

    runtime = build_local(Settings.local_mode(db_path=db))
    await runtime.start()
    edge = build_edge(runtime.settings, runtime=runtime)
    try:
        async with client_for(create_management_app(edge, lifespan=False)) as api:
            session = await api.get("/api/v1/session", headers={"X-API-Key": secret})
            assert session.json()["tenant"] == "acme" and session.json()["role"] == "admin"
            code, _, _ = await _wfe(capsys, "tenants", "disable", "acme", "--db", db)
            assert code == 0
            runtime.tenant_guard.directory.forget()  # type: ignore[union-attr]
            refused = await api.get("/api/v1/session", headers={"X-API-Key": secret})
            assert refused.status_code == 403
    finally:
        await runtime.stop()
