"""Issue 11, item 4: a full disk answers 503 with Retry-After, loses nothing, leaks nothing.

The fault is SQLite's own: ``PRAGMA max_page_count`` caps the database file at its
current size, so the next write that needs a page fails with SQLITE_FULL ("database or
disk is full"), as on a full disk. Once answered with a generic ``500 INTERNAL``, and
each failed group commit left ``Future exception was never retrieved`` in the log.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3

import httpx
import pytest

from shared.app.service import StartRequest
from shared.composition import LocalRuntime
from shared.errors import TransientError

BIG = "x" * 200_000  # needs new pages whatever the free space inside the file


def _cap_file(runtime: LocalRuntime, pages: int | None) -> None:
    """Cap the store's file at its current size (None: lift the cap)."""
    writer: sqlite3.Connection = runtime.store._conn  # type: ignore[attr-defined]  # fault injection
    current = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {current if pages is None else pages}")


def _flow(name: str, blob: str = "") -> dict[str, object]:
    step = {"id": "s", "type": "transform", "config": {"set": {"ok": True}}}
    return {"name": name, "variables": {"blob": blob}, "steps": [step]}


async def test_a_full_disk_is_a_retryable_503_and_nothing_is_half_written(
    runtime: LocalRuntime, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = await api.post("/api/v1/workflows", json=_flow("before"))
    assert created.status_code == 201
    workflow_id = created.json()["id"]

    _cap_file(runtime, None)
    full = await api.post("/api/v1/workflows", json=_flow("during", BIG))
    assert full.status_code == 503, full.text
    assert full.json()["error"]["code"] == "STORE_UNAVAILABLE"
    assert full.headers["retry-after"] == "2"

    # Many transactions failing in shared group commits: each caller gets the error...
    starts = [
        runtime.app.start_execution(StartRequest(workflow_id, {"blob": BIG})) for _ in range(20)
    ]
    results = await asyncio.gather(*starts, return_exceptions=True)
    assert results and all(isinstance(r, TransientError) for r in results), results
    assert {r.code for r in results if isinstance(r, TransientError)} == {"STORE_UNAVAILABLE"}
    # ...and no future of theirs is left with an exception nobody read.
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]

    _cap_file(runtime, 1_073_741_823)
    after = await api.post("/api/v1/workflows", json=_flow("after", BIG))
    assert after.status_code == 201, after.text
    names = sorted(w.name for w in (await runtime.app.list_workflows()).items)
    assert names == ["after", "before"]  # nothing of "during"
    assert (await runtime.app.list_executions(workflow_id=workflow_id)).items == []
