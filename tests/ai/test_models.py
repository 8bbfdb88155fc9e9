"""The one model factory: nothing when no model is configured, Vertex AI up to credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from _ai_defs import MakeHarness, ai_node, triage

from shared.ai import ModelError, NoModelProvider, build_model_provider
from shared.ai.models import ModelSpec, VertexModelProvider, call_model, resolve_spec
from shared.models import ExecutionStatus
from shared.settings import AiSettings, GcpSettings, Settings

SPEC = ModelSpec("gemini-2.0-flash", 0.0, 5.0, "europe-west1", 256)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Application default credentials point at a file that does not exist; no gcloud
    config, no metadata server lookup."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)


def test_no_model_configured_is_the_default_and_builds_nothing() -> None:
    provider = build_model_provider(Settings.defaults())
    assert isinstance(provider, NoModelProvider) and not provider.configured
    with pytest.raises(ModelError) as caught:
        provider.chat_model(SPEC)
    assert caught.value.code == "NO_MODEL"


def test_vertex_needs_a_project(no_credentials: None) -> None:
    with pytest.raises(ModelError) as caught:
        build_model_provider(Settings(ai=AiSettings(provider="vertex")))
    assert caught.value.code == "MODEL_CONFIG"


def test_step_options_override_the_settings() -> None:
    from shared.ai.models import ModelOptions

    settings = Settings(
        ai=AiSettings(model="gemini-2.5-flash", timeout_seconds=7),
        gcp=GcpSettings(location="us-east1"),
    )
    spec = resolve_spec(ModelOptions(temperature=0.3, location="europe-west4"), settings)
    assert spec == ModelSpec("gemini-2.5-flash", 0.3, 7.0, "europe-west4", 2048)
    assert resolve_spec(None, settings).location == "us-east1"


async def test_vertex_constructs_with_a_project_and_fails_clearly_without_credentials(
    no_credentials: None,
) -> None:
    provider = build_model_provider(
        Settings(ai=AiSettings(provider="vertex", project="demo-project", location="europe-west1"))
    )
    assert isinstance(provider, VertexModelProvider) and provider.configured
    model = provider.chat_model(SPEC)
    assert type(model).__name__ == "ChatVertexAI"
    assert model.project == "demo-project"  # type: ignore[attr-defined]
    assert model.location == "europe-west1"  # type: ignore[attr-defined]
    assert provider.chat_model(SPEC) is model  # one client per spec
    from langchain_core.messages import HumanMessage

    with pytest.raises(ModelError) as caught:
        await call_model(model, [HumanMessage("hi")], timeout=20)
    assert caught.value.code == "MODEL_CREDENTIALS"
    assert caught.value.retryable is False
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.message


async def test_a_decision_on_vertex_without_credentials_takes_its_fallback(
    make_harness: MakeHarness, no_credentials: None
) -> None:
    from shared.ai import AiDependencies, register_ai_steps

    h = await make_harness()
    settings = Settings(ai=AiSettings(provider="vertex", project="demo-project"))
    register_ai_steps(h.registry, AiDependencies(settings=settings), replace=True)
    execution = await h.run(triage(ai_node(model={"timeoutSeconds": 20})), {"text": "x"})
    assert execution.status == ExecutionStatus.SUCCEEDED
    run = next(r for r in await h.runs(execution.id) if r.step_id == "d")
    entry = run.output["path"][0]
    assert entry["decidedBy"] == "fallback"
    assert entry["fallbackReason"]["code"] == "MODEL_CREDENTIALS"
