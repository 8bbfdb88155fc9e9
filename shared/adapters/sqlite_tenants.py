"""The tenant registry in the local store's SQLite file (tables ``tenants`` and
``tenant_keys``), and the quota counts over the store's own tables in that file."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

from shared.adapters._sqlite_side import SideConnection
from shared.adapters._sqlite_tx import stored_bytes
from shared.adapters.memory_tenants import tenant_exists
from shared.errors import Conflict, NotFound
from shared.models.tenant import ApiKey, Tenant

__all__ = ["SqliteTenantStore", "SqliteUsage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tenant_keys_by_tenant ON tenant_keys (tenant, id);
"""


def _doc(model: Tenant | ApiKey) -> str:
    return model.model_dump_json(by_alias=True, exclude_none=True)


class SqliteTenantStore:
    """Tenants and keys as rows holding each record's JSON."""

    def __init__(self, path: str | Path) -> None:
        self._side = SideConnection(path, _SCHEMA)

    async def create_tenant(self, tenant: Tenant) -> None:
        def body(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO tenants (id, doc) VALUES (?, ?)", (tenant.id, _doc(tenant))
                )
            except sqlite3.IntegrityError:
                raise tenant_exists(tenant.id) from None

        await self._side.run(body, write=True)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        def body(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT doc FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
            return str(row[0]) if row else None

        doc = await self._side.run(body, write=False)
        return Tenant.model_validate_json(doc) if doc is not None else None

    async def list_tenants(self, limit: int = 100, after: str | None = None) -> list[Tenant]:
        def body(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT doc FROM tenants WHERE id > ? ORDER BY id LIMIT ?",
                (after or "", max(0, limit)),
            ).fetchall()
            return [str(row[0]) for row in rows]

        return [Tenant.model_validate_json(doc) for doc in await self._side.run(body, write=False)]

    async def update_tenant(self, tenant: Tenant) -> None:
        def body(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE tenants SET doc = ? WHERE id = ?", (_doc(tenant), tenant.id)
            ).rowcount
            if not changed:
                raise NotFound(f"tenant {tenant.id} not found")

        await self._side.run(body, write=True)

    async def add_key(self, key: ApiKey) -> None:
        def body(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO tenant_keys (id, tenant, doc) VALUES (?, ?, ?)",
                    (key.id, key.tenant, _doc(key)),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"API key id {key.id} is taken", retryable=True) from None

        await self._side.run(body, write=True)

    async def get_key(self, key_id: str) -> ApiKey | None:
        def body(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT doc FROM tenant_keys WHERE id = ?", (key_id,)).fetchone()
            return str(row[0]) if row else None

        doc = await self._side.run(body, write=False)
        return ApiKey.model_validate_json(doc) if doc is not None else None

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        def body(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT doc FROM tenant_keys WHERE tenant = ? ORDER BY id", (tenant_id,)
            ).fetchall()
            return [str(row[0]) for row in rows]

        return [ApiKey.model_validate_json(doc) for doc in await self._side.run(body, write=False)]

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey:
        def body(conn: sqlite3.Connection) -> ApiKey:
            row = conn.execute(
                "SELECT doc FROM tenant_keys WHERE id = ? AND tenant = ?", (key_id, tenant_id)
            ).fetchone()
            if row is None:
                raise NotFound(f"API key {key_id} not found in tenant {tenant_id}")
            key = ApiKey.model_validate_json(row[0])
            if key.revoked_at is None:
                key = key.model_copy(update={"revoked_at": at})
                conn.execute("UPDATE tenant_keys SET doc = ? WHERE id = ?", (_doc(key), key_id))
            return key

        return await self._side.run(body, write=True)

    async def close(self) -> None:
        await self._side.close()


class SqliteUsage:
    """Counts over the store's ``workflows`` and ``executions`` tables (same file; the
    ``executions_by_status`` index serves the execution count)."""

    def __init__(self, path: str | Path) -> None:
        self._side = SideConnection(path, "")

    async def count_workflows(self, tenant_id: str) -> int:
        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM workflows WHERE tenant = ? AND deleted = 0", (tenant_id,)
            ).fetchone()
            return int(row[0])

        return await self._side.run(body, write=False)

    async def count_executions(self, tenant_id: str, statuses: Collection[str]) -> int:
        wanted = sorted(set(statuses))
        if not wanted:
            return 0
        marks = ", ".join("?" for _ in wanted)

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                f"SELECT COUNT(*) FROM executions WHERE tenant = ? AND status IN ({marks})",
                (tenant_id, *wanted),
            ).fetchone()
            return int(row[0])

        return await self._side.run(body, write=False)

    async def stored_bytes(self, tenant_id: str) -> int | None:
        """The store's per-tenant counter (table ``tenant_storage``, kept by its
        transactions: ``_sqlite_tx.apply_writes``)."""

        def body(conn: sqlite3.Connection) -> int:
            return stored_bytes(conn, tenant_id)

        return await self._side.run(body, write=False)

    async def close(self) -> None:
        await self._side.close()
