"""Workflow changes notify the hooks (the trigger manager reconciles there)."""

from __future__ import annotations

from shared.composition import build_local
from shared.settings import Settings

FLOW = {
    "name": "hooked",
    "trigger": {"type": "schedule", "cron": "*/5 * * * *"},
    "steps": [{"id": "a", "type": "transform"}],
}


async def test_create_update_activate_delete_call_the_hooks() -> None:
    runtime = build_local(Settings.local_mode(), memory=True)
    calls: list[tuple[str, str]] = []

    async def hook(workflow_id: str, tenant: str) -> None:
        calls.append((workflow_id, tenant))

    async def broken(workflow_id: str, tenant: str) -> None:
        raise RuntimeError("a failing hook must not fail the change")

    runtime.app.change_hooks.extend([hook, broken])
    app = runtime.app.for_tenant("acme")
    created = await app.create_workflow(FLOW)
    await app.update_workflow(created.id, {**FLOW, "description": "v2"})
    await app.set_active(created.id, False)
    await app.delete_workflow(created.id)
    assert calls == [(created.id, "acme")] * 4
    await runtime.store.close()
    await runtime.bus.close()
    await runtime.http.aclose()
