"""The composition root of the edges: what each function's app is built with, from its
settings alone, before any request (and a setting that cannot work fails right there)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.adapters.cloud_scheduler import CloudSchedulerBackend
from shared.api.auth import (
    ApiKeyAuthenticator,
    LocalDevAuthenticator,
    RegistryAuthenticator,
    hash_api_key,
)
from shared.api.edge import Edge
from shared.composition import build_local
from shared.composition.edge import FUNCTION_APPS, build_edge, build_function_app
from shared.errors import InputInvalid
from shared.settings import Settings

GCP = {
    "WFE_BACKEND": "gcp",
    "WFE_PROJECT": "demo",
    "WFE_EXECUTE_STEP_URL": "https://execute-step.example",
    "WFE_TRIGGER_HANDLER_URL": "https://trigger-handler.example",
}


def _edge(service: str, env: dict[str, str]) -> Edge:
    app = build_function_app(service, Settings.from_env(env))
    edge = app.state.edge  # type: ignore[attr-defined]
    assert isinstance(edge, Edge)
    return edge


def test_every_function_gets_the_authenticator_its_settings_ask_for() -> None:
    keys = {"WFE_API_KEYS": f"{hash_api_key('k', 's')}:ana:default:editor", "WFE_API_KEY_SALT": "s"}
    for service in FUNCTION_APPS:
        keyed = _edge(service, {**GCP, **keys}).authenticator
        assert isinstance(keyed, RegistryAuthenticator)  # registry keys first, then these
        assert isinstance(keyed.inner, ApiKeyAuthenticator)
        unauthenticated = {**GCP, "WFE_ALLOW_UNAUTHENTICATED": "true"}
        assert isinstance(_edge(service, unauthenticated).authenticator, LocalDevAuthenticator)


def test_create_keeps_cloud_scheduler_jobs_in_line_in_gcp_mode() -> None:
    keyed = {**GCP, "WFE_API_KEYS": f"{hash_api_key('k', 's')}:ana:default:owner"}
    edge = _edge("create", keyed)
    assert edge.triggers is not None
    assert isinstance(edge.triggers.backend, CloudSchedulerBackend)
    assert edge.start_triggers is False  # follows changes; no full reconcile per cold start
    assert _edge("create", {**keyed, "WFE_SCHEDULER_JOBS": "false"}).triggers is None
    without_target = {k: v for k, v in keyed.items() if k != "WFE_TRIGGER_HANDLER_URL"}
    assert _edge("create", without_target).triggers is None
    assert _edge("execute-step", GCP).triggers is None


@pytest.mark.parametrize(
    "entry",
    ["just-a-key", "digest:ana:default", "digest:ana:default:superuser", "digest::default:owner"],
)
def test_a_malformed_api_key_entry_stops_the_build_without_echoing_it(entry: str) -> None:
    with pytest.raises(InputInvalid) as refused:
        build_function_app("create", Settings.from_env({**GCP, "WFE_API_KEYS": entry}))
    assert refused.value.code == "INVALID_SETTINGS"
    assert entry not in refused.value.message


def test_an_unknown_function_is_refused() -> None:
    with pytest.raises(ValueError, match="no function named"):
        build_function_app("nope", Settings.from_env(GCP))


@pytest.mark.parametrize("service", ["create", "status-stream"])
def test_a_public_function_in_gcp_mode_refuses_to_start_without_credentials(
    service: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InputInvalid) as refused:
        build_function_app(service, Settings.from_env(GCP))
    assert refused.value.code == "INVALID_SETTINGS"
    assert "WFE_API_KEYS" in refused.value.message
    allowed = Settings.from_env({**GCP, "WFE_ALLOW_UNAUTHENTICATED": "true"})
    with caplog.at_level("WARNING"):
        edge = build_function_app(service, allowed).state.edge  # type: ignore[attr-defined]
    assert isinstance(edge.authenticator, LocalDevAuthenticator)
    assert "WFE_ALLOW_UNAUTHENTICATED" in caplog.text


def test_internal_functions_and_local_mode_start_without_keys() -> None:
    for service in ("execute-step", "trigger-handler"):
        build_function_app(service, Settings.from_env(GCP))
    build_function_app("create", Settings.from_env({"WFE_DB_PATH": ":memory:"}))


def test_only_execute_step_in_gcp_mode_sweeps_when_it_starts() -> None:
    """Issue 11, item 3: a killed instance's runs are retried when the next one starts."""
    keyed = {**GCP, "WFE_API_KEYS": f"{hash_api_key('k', 's')}:ana:default:owner"}
    assert _edge("execute-step", keyed).sweep_at_start is True
    for service in ("create", "trigger-handler", "status-stream"):
        assert _edge(service, keyed).sweep_at_start is False
    assert _edge("execute-step", {}).sweep_at_start is False  # local mode recovers instead


async def test_an_edge_that_sweeps_at_start_re_enqueues_overdue_runs(tmp_path: Path) -> None:
    runtime = build_local(Settings.local_mode(db_path=str(tmp_path / "s.db")))
    swept: list[int] = []
    real = runtime.sweep_once

    async def counted() -> int:
        swept.append(await real())
        return swept[-1]

    runtime.sweep_once = counted  # type: ignore[method-assign]
    edge = build_edge(runtime.settings, runtime=runtime)
    edge.owns_runtime = True
    edge.sweep_at_start = True
    await edge.start()
    try:
        for _ in range(100):
            if swept:
                break
            await asyncio.sleep(0.01)
        assert swept == [0]  # it ran once, at start (nothing was overdue here)
    finally:
        await edge.stop()
