"""Settings from the environment (``WFE_*`` variables), validated once at startup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

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
