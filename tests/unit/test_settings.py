"""Settings: flat ``WFE_*`` variables into the groups, validated, named in errors."""

from __future__ import annotations

import pytest

from shared.errors import InputInvalid
from shared.settings import AiSettings, GcpSettings, LocalSettings, Settings


def test_flat_variables_fill_the_groups() -> None:
    settings = Settings.from_env(
        {
            "WFE_BACKEND": "gcp",
            "WFE_DB_PATH": "x.db",
            "WFE_PROJECT": "demo",
            "WFE_CHAIN_COMMIT_STEPS": "7",
            "WFE_AI_MODEL": "gemini-2.5-pro",
            "WFE_AI_PRICES": '{"m": [1, 2]}',
            "WFE_API_KEYS": "a:s:t:owner, b:s:t:viewer,",
            "WFE_HTTP_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "HOME": "/not/ours",
        }
    )
    assert settings.backend == "gcp"
    assert settings.local.db_path == "x.db"
    assert settings.gcp.project == "demo"
    assert settings.engine.chain_commit_steps == 7
    assert settings.ai.model == "gemini-2.5-pro"
    assert settings.ai.prices == {"m": (1.0, 2.0)}
    assert settings.api_keys == ["a:s:t:owner", "b:s:t:viewer"]
    assert settings.engine.http_allowed_hosts == ["127.0.0.1", "localhost"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WFE_DISPATCH_DEADLINE_SECONDS", "5"),
        ("WFE_WORKERS", "0"),
        ("WFE_BACKEND", "cloud"),
        ("WFE_AI_TEMPERATURE", "3"),
        ("WFE_AI_PRICES", "{not json"),
        ("WFE_CHAIN_COMMIT_STEPS", "many"),
    ],
)
def test_an_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(InputInvalid) as caught:
        Settings.from_env({variable: value})
    assert caught.value.code == "INVALID_SETTINGS"
    assert caught.value.message.startswith(f"setting {variable}:")


def test_the_process_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFE_WORKERS", "7")
    monkeypatch.setenv("WFE_AI_HISTORY_SEED", "3")
    assert Settings().local.workers == 7
    read = Settings.from_env(db_path="o.db", ai_history_seed=None)
    assert (read.local.workers, read.local.db_path, read.ai.history_seed) == (7, "o.db", 3)
    assert Settings.local_mode("t.db").local.workers == 32, "local_mode reads no environment"
    assert Settings.defaults().ai.history_seed == 0
    with pytest.raises(TypeError, match="nope"):
        Settings.from_env({}, nope=1)


def test_typed_groups_and_validated_copies() -> None:
    settings = Settings(
        local=LocalSettings(db_path="t.db", workers=4),
        gcp=GcpSettings(project="p"),
        ai=AiSettings(provider="vertex"),
    )
    assert (settings.local.workers, settings.gcp.project, settings.ai.provider) == (
        4,
        "p",
        "vertex",
    )
    copy = settings.with_overrides(ai_recordings_dir="rec", workers=8)
    assert (copy.ai.recordings_dir, copy.local.workers, copy.gcp.project) == ("rec", 8, "p")
    assert settings.local.workers == 4
    with pytest.raises(InputInvalid, match="WFE_WORKERS"):
        settings.with_overrides(workers=0)


def test_every_variable_sets_one_attribute() -> None:
    variables = Settings.variables()
    assert variables["WFE_AI_MODEL"] == "ai.model"
    assert variables["WFE_DB_PATH"] == "local.db_path"
    assert variables["WFE_PROJECT"] == "gcp.project"
    assert variables["WFE_API_KEYS"] == "api_keys"
    assert len(set(variables.values())) == len(variables)
    groups = {"engine", "local", "gcp", "ai", "limits"}
    fields = {f for f in Settings.model_fields if f not in groups}
    for group in groups:
        model = type(getattr(Settings.defaults(), group))
        fields |= {f"{group}.{f}" for f in model.model_fields}
    assert set(variables.values()) == fields


def test_a_former_variable_name_still_works() -> None:
    for former, current in Settings.former_names().items():
        attribute = Settings.variables()[current]
        read = Settings.from_env({former: "https://a.example"})
        assert getattr(read, attribute) == ["https://a.example"]
        both = Settings.from_env({former: "https://a.example", current: "https://b.example"})
        assert getattr(both, attribute) == ["https://b.example"]


def test_the_flat_source_answers_per_field_as_it_does_in_bulk() -> None:
    from shared.settings import _ENV, _FlatEnvSource

    token = _ENV.set({"WFE_DB_PATH": "x.db", "WFE_TENANT": "acme"})
    try:
        source = _FlatEnvSource(Settings)
        field = Settings.model_fields["tenant"]
        assert source.get_field_value(field, "tenant") == ("acme", "tenant", False)
        local, _, _ = source.get_field_value(Settings.model_fields["local"], "local")
        assert local == {"db_path": "x.db"}
    finally:
        _ENV.reset(token)
