"""Settings from the environment (``WFE_*`` variables), validated once at startup."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from shared.errors import InputInvalid


class Settings(BaseModel):
    """Everything the bootstrap needs to pick and configure adapters."""

    backend: Literal["local", "gcp"] = "local"
    """``local``: SQLite + in-process queue and bus. ``gcp``: Firestore, Cloud Tasks, Pub/Sub."""
    db_path: str = ".wfe/wfe.db"
    """SQLite file of local mode (``:memory:`` for a throwaway store)."""
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    """NORMAL survives a process crash; FULL also an OS crash or power loss."""
    workers: int = Field(default=32, ge=1, le=256)
    """Concurrent deliveries of the local task dispatcher."""
    duplicate_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Local dispatcher: probability of an injected duplicate delivery (testing)."""
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    sweep_grace_seconds: float = Field(default=30.0, ge=0)
    http_allowed_hosts: list[str] = Field(default_factory=list)
    """Hosts http steps may call even over plain http or on private addresses."""
    chain_commit_steps: int = Field(default=50, ge=1, le=500)
    max_chain_steps: int = Field(default=500, ge=1, le=10_000)
    default_step_timeout_seconds: float = Field(default=300.0, gt=0)
    tenant: str = "default"
    api_keys: list[str] = Field(default_factory=list)
    """API keys as ``<sha256 of "salt:key">:<subject>:<tenant>:<role>`` entries; when set,
    every request needs one (``X-API-Key`` or ``Authorization: Bearer``). Empty: local
    development mode (no credentials, ``X-Tenant`` picks the tenant)."""
    api_key_salt: str = ""
    event_topic: str = "workflow-events"

    # -- backend = gcp (docs/gcp.md); local mode reads none of these ---------------
    project: str = ""
    """Google Cloud project id (default: ``GOOGLE_CLOUD_PROJECT``)."""
    location: str = "us-central1"
    """Region of the Cloud Tasks queue and of the Cloud Scheduler jobs."""
    tasks_queue: str = "wfe-steps"
    """Cloud Tasks queue id; the full name is built from project and location."""
    execute_step_url: str = ""
    """URL of the ``execute-step`` function: every task is an HTTP POST to it."""
    trigger_handler_url: str = ""
    """Base URL of the ``trigger-handler`` function, which Scheduler jobs call."""
    tasks_service_account: str = ""
    """Service account whose OIDC token Cloud Tasks sends (empty: no token)."""
    tasks_audience: str = ""
    """Audience of that token (default: ``execute_step_url``)."""
    scheduler_service_account: str = ""
    """Service account whose OIDC token Cloud Scheduler sends (empty: no token)."""
    scheduler_audience: str = ""
    """Audience of that token (default: ``trigger_handler_url``)."""
    dispatch_deadline_seconds: float = Field(default=600.0, ge=15.0, le=1800.0)
    """How long Cloud Tasks waits for execute-step to answer (Cloud Tasks: 15 s..30 min)."""
    lifecycle_topic: str = ""
    """Topic of execution lifecycle events for other services (empty: none published)."""
    firestore_database: str = "(default)"
    """Firestore database id."""
    tasks_emulator_host: str = ""
    """``host:port`` of a Cloud Tasks emulator (insecure channel, no credentials). The
    Firestore and Pub/Sub emulators are named by the SDKs' own variables,
    ``FIRESTORE_EMULATOR_HOST`` and ``PUBSUB_EMULATOR_HOST``."""

    # -- AI steps (docs/ai.md): decision and llm; nothing here connects at startup ------
    ai_provider: Literal["none", "vertex"] = "none"
    """``none``: no model is configured (the offline default: AI nodes route by history,
    llm steps replay recordings). ``vertex``: Gemini on Vertex AI."""
    ai_model: str = "gemini-2.0-flash"
    """Default model of AI nodes and llm steps (a step may name another)."""
    ai_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    ai_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    """Time limit of one model call; an AI node takes its fallback when it runs out."""
    ai_location: str = ""
    """Vertex AI region (default: ``location``)."""
    ai_project: str = ""
    """Project billed for Vertex AI calls (default: ``project``, then GOOGLE_CLOUD_PROJECT)."""
    ai_max_output_tokens: int = Field(default=2048, ge=1, le=65_536)
    ai_prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "gemini-2.0-flash": (0.10, 0.40),
            "gemini-2.0-flash-lite": (0.075, 0.30),
            "gemini-2.5-flash": (0.30, 2.50),
            "gemini-2.5-pro": (1.25, 10.0),
        }
    )
    """USD per million (input, output) tokens by model; JSON in ``WFE_AI_PRICES``."""
    ai_execution_max_tokens: int | None = Field(default=None, ge=1)
    """Default token budget of one execution's model calls (a step may set its own)."""
    ai_execution_max_cost_usd: float | None = Field(default=None, gt=0)
    ai_history_seed: int = 0
    """Seed of the history router: the same seed and history give the same choices."""
    ai_history_exploration: float = Field(default=1.0, gt=0, le=100)
    """Prior pseudo-counts per branch of the history router: more explores longer."""
    ai_history_window: int = Field(default=200, ge=1, le=5000)
    """Latest finished executions of a workflow the history router learns from."""
    ai_recordings_dir: str = ""
    """Folder of ``*.recording.json`` model recordings replayed when no model is configured
    (``wfe run FILE`` and ``wfe dev`` use the folder of the examples)."""

    @field_validator("ai_prices", mode="before")
    @classmethod
    def _prices_from_json(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``WFE_<FIELD>`` variables (lists comma-separated), then apply overrides."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(f"WFE_{name.upper()}")
            if raw is None:
                continue
            if field.annotation == list[str]:
                values[name] = [part.strip() for part in raw.split(",") if part.strip()]
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputInvalid(
                f"setting WFE_{str(first['loc'][0]).upper()}: {first['msg']}",
                code="INVALID_SETTINGS",
            ) from exc
